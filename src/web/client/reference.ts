import { api, newKey } from './api'
import { byId } from './dom'
import { sentence } from './errors'
import type { Upload } from './types'

/**
 * The form's reference image: choosing a file uploads it at once (one
 * Idempotency-Key per chosen file, so a retried upload is one upload) and
 * shows the server's thumbnail, i.e. what was stored, not the local file.
 * The next generation sends its id as `uploadId`.
 */
export type ReferenceDeps = { notify: (message: string) => void }

export function makeReference(deps: ReferenceDeps) {
  const input = byId<HTMLInputElement>('reference')
  const preview = byId('reference-preview')
  const img = byId<HTMLImageElement>('reference-img')
  const status = byId('reference-status')
  let current: Upload | undefined

  function show(upload: Upload | undefined) {
    current = upload
    preview.hidden = !upload
    if (upload) {
      img.src = upload.thumbnailUrl
      img.dataset.uploadId = upload.id
      status.textContent = `${upload.width} × ${upload.height} ${upload.format.toUpperCase()}: used as the background`
    } else {
      img.removeAttribute('src')
      delete img.dataset.uploadId
      status.textContent = ''
    }
  }

  input.addEventListener('change', async () => {
    const file = input.files?.[0]
    if (!file) return
    const form = new FormData()
    form.append('file', file)
    input.disabled = true
    status.textContent = 'Uploading…'
    try {
      show(await api<Upload>('POST', '/v1/uploads', { form, idempotencyKey: newKey() }))
      deps.notify('')
    } catch (error) {
      show(undefined)
      input.value = ''
      deps.notify(sentence(error, 'upload'))
    } finally {
      input.disabled = false
    }
  })

  byId('reference-clear').addEventListener('click', () => {
    input.value = ''
    show(undefined)
  })

  return {
    uploadId: () => current?.id,
    clear: () => {
      input.value = ''
      show(undefined)
    },
  }
}
