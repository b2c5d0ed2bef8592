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
export function makeGenerateForm(deps: {
  poses: PosePicker
  /** The reference upload to send as `uploadId`, if one is chosen. */
  uploadId: () => string | undefined
  added: (gen: Generation) => void
  notify: (message: string) => void
}) {
  const form = byId<HTMLFormElement>('generate')
  const submit = byId<HTMLButtonElement>('generate-submit')
  const prompt = byId<HTMLTextAreaElement>('prompt')
  const variations = byId<HTMLInputElement>('variations')
  const summary = byId('selection')
  const libraryPart = byId('library-mode')
  const textPart = byId('text-mode')
  let unanswered: { body: string; key: string } | undefined

  const mode = () =>
    (form.elements.namedItem('mode') as RadioNodeList).value === 'text' ? 'text' : 'library'

  function showMode() {
    const text = mode() === 'text'
    libraryPart.hidden = text
    textPart.hidden = !text
    prompt.required = text
    selectionChanged()
  }

  function selectionChanged() {
    const n = deps.poses.selected().length
    const perPose = Math.max(1, Number(variations.value) || 1)
    summary.textContent =
      mode() === 'text'
        ? `${perPose} image${perPose === 1 ? '' : 's'} from your prompt`
        : n === 0
          ? 'No poses selected'
          : `${n} pose${n === 1 ? '' : 's'} selected: ${n * perPose} images`
  }

  function body(): {
    mode: string
    variations: number
    prompt?: string
    poseIds?: string[]
    uploadId?: string
  } {
    const count = Number(variations.value)
    const uploadId = deps.uploadId()
    const reference = uploadId ? { uploadId } : {}
    if (mode() === 'text')
      return { mode: 'text', prompt: prompt.value.trim(), variations: count, ...reference }
    return { mode: 'library', poseIds: deps.poses.selected(), variations: count, ...reference }
  }

  form.addEventListener('change', (e) => {
    if ((e.target as HTMLInputElement).name === 'mode') showMode()
  })
  variations.addEventListener('input', selectionChanged)

  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const payload = body()
    if (payload.mode === 'library' && payload.poseIds!.length === 0)
      return deps.notify('Pick at least one pose first.')
    const text = JSON.stringify(payload)
    const key = unanswered?.body === text ? unanswered.key : newKey()
    unanswered = { body: text, key }
    submit.disabled = true
    submit.textContent = 'Starting…'
    try {
      const generation = await api<Generation>('POST', '/v1/generations', {
        body: payload,
        idempotencyKey: key,
      })
      unanswered = undefined
      deps.added(generation)
      deps.notify('')
      if (payload.mode === 'library') deps.poses.clear()
    } catch (error) {
      if (error instanceof ApiError && error.status < 500) unanswered = undefined
      deps.notify(sentence(error, 'generations'))
    } finally {
      submit.disabled = false
      submit.textContent = 'Generate'
    }
  })

  showMode()
  return { selectionChanged }
}
