import { isEventName, type Event, type EventName } from './event'

/**
 * One event as a Redis stream entry holds it: a single field `e`,
 *
 *   <name> \n <time ms> \n <data JSON>
 *
 * One field rather than one per part: every argument of an append is encoded
 * by node-redis and converted again inside the append script, and XADD stores
 * one field for less than three. The same text follows the user id and the
 * id in a notification record (notification.ts), so a carried event and a
 * read one are parsed alike. A name and a time never hold a newline, and
 * JSON.stringify escapes every newline inside data.
 *
 * Entries written before this format (fields n, d and t) are still read.
 */
export const ENTRY_FIELD = 'e'

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

/** A stream entry's fields as XRANGE returns them, in either format. */
export function parseEntryFields(id: string, fields: Record<string, string>): Event | undefined {
  const text = fields[ENTRY_FIELD]
  if (text !== undefined) return parseEntry(id, text)
  // the earlier format: one field per part
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
