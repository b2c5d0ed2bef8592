import { isEventName, type Event, type EventName } from './event'

/**
 * One event as text, the way an append hands it to Redis and a notification
 * record carries it back:
 *
 *   <name> \n <time ms> \n <data JSON>
 *
 * One argument per event rather than three: every argument of an append is
 * encoded by node-redis and converted again inside the append script, which
 * splits the text into the stream entry's fields n (name), t (time) and d
 * (data), the layout every version of Atelier reads and writes. A name and a
 * time never hold a newline, and JSON.stringify escapes every newline inside
 * data.
 */
export function encodeEntry(name: EventName, at: number, json: string): string {
  return `${name}\n${at}\n${json}`
}

/** The event, or undefined when the text is not an entry this version can read. */
export function parseEntry(id: string, text: string): Event | undefined {
  const nameEnd = text.indexOf('\n')
  const atEnd = nameEnd < 0 ? -1 : text.indexOf('\n', nameEnd + 1)
  if (atEnd < 0) return undefined
  return toEvent(id, text.slice(0, nameEnd), text.slice(nameEnd + 1, atEnd), text.slice(atEnd + 1))
}

/** A stream entry's fields (n, t, d) as XRANGE returns them. */
export function parseEntryFields(id: string, fields: Record<string, string>): Event | undefined {
  return toEvent(id, fields.n ?? '', fields.t ?? '', fields.d ?? 'null')
}

function toEvent(id: string, name: string, at: string, json: string): Event | undefined {
  if (!isEventName(name)) return undefined
  const time = Number(at)
  if (!Number.isFinite(time)) return undefined
  try {
    return { id, name, data: JSON.parse(json), json, at: time }
  } catch {
    return undefined
  }
}
