import { api, ApiError, newKey } from './api'
import { byId } from './dom'
import { sentence } from './errors'
import type { PosePicker } from './poses'
import type { Generation } from './types'

/**
 * The "New generation" form. Each submission gets one Idempotency-Key; the
 * button is disabled while it is in flight, and when the answer never came
 * (network or 5xx) the next click with the same form reuses the key, so the
 * server decides whether it already took the first one: never two charges.
 */
export type GenerateFormDeps = {
  poses: PosePicker
  /** The reference upload to send as `uploadId`, if one is chosen. */
  uploadId: () => string | undefined
  added: (gen: Generation) => void
  notify: (message: string) => void
}

type Mode = 'library' | 'text'

type GenerationBody = {
  mode: Mode
  variations: number
  prompt?: string
  poseIds?: string[]
  uploadId?: string
}

type FormElements = ReturnType<typeof formElements>

/** The body and key of the last submission that got no answer: the next same body reuses the key. */
type Unanswered = { body: string; key: string } | undefined

export function makeGenerateForm(deps: GenerateFormDeps) {
  const el = formElements()
  const pending: { unanswered: Unanswered } = { unanswered: undefined }
  const mode = (): Mode =>
    (el.form.elements.namedItem('mode') as RadioNodeList).value === 'text' ? 'text' : 'library'

  function showMode() {
    const text = mode() === 'text'
    el.libraryPart.hidden = text
    el.textPart.hidden = !text
    el.prompt.required = text
    selectionChanged()
  }

  function selectionChanged() {
    const perPose = Math.max(1, Number(el.variations.value) || 1)
    el.summary.textContent = selectionText(mode(), deps.poses.selected().length, perPose)
  }

  el.form.addEventListener('change', (e) => {
    if ((e.target as HTMLInputElement).name === 'mode') showMode()
  })
  el.variations.addEventListener('input', selectionChanged)
  el.form.addEventListener('submit', async (e) => {
    e.preventDefault()
    await submit(deps, el, pending, requestBody(deps, el, mode()))
  })

  showMode()
  return { selectionChanged }
}

function formElements() {
  return {
    form: byId<HTMLFormElement>('generate'),
    submit: byId<HTMLButtonElement>('generate-submit'),
    prompt: byId<HTMLTextAreaElement>('prompt'),
    variations: byId<HTMLInputElement>('variations'),
    summary: byId('selection'),
    libraryPart: byId('library-mode'),
    textPart: byId('text-mode'),
  }
}

function selectionText(mode: Mode, poses: number, perPose: number) {
  if (mode === 'text') return `${perPose} image${perPose === 1 ? '' : 's'} from your prompt`
  if (poses === 0) return 'No poses selected'
  return `${poses} pose${poses === 1 ? '' : 's'} selected: ${poses * perPose} images`
}

function requestBody(deps: GenerateFormDeps, el: FormElements, mode: Mode): GenerationBody {
  const count = Number(el.variations.value)
  const uploadId = deps.uploadId()
  const reference = uploadId ? { uploadId } : {}
  if (mode === 'text')
    return { mode: 'text', prompt: el.prompt.value.trim(), variations: count, ...reference }
  return { mode: 'library', poseIds: deps.poses.selected(), variations: count, ...reference }
}

async function submit(
  deps: GenerateFormDeps,
  el: FormElements,
  pending: { unanswered: Unanswered },
  payload: GenerationBody,
) {
  if (payload.mode === 'library' && payload.poseIds!.length === 0)
    return deps.notify('Pick at least one pose first.')
  const text = JSON.stringify(payload)
  const key = pending.unanswered?.body === text ? pending.unanswered.key : newKey()
  pending.unanswered = { body: text, key }
  el.submit.disabled = true
  el.submit.textContent = 'Starting…'
  try {
    const generation = await api<Generation>('POST', '/v1/generations', {
      body: payload,
      idempotencyKey: key,
    })
    pending.unanswered = undefined
    deps.added(generation)
    deps.notify('')
    if (payload.mode === 'library') deps.poses.clear()
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) pending.unanswered = undefined
    deps.notify(sentence(error, 'generations'))
  } finally {
    el.submit.disabled = false
    el.submit.textContent = 'Generate'
  }
}
