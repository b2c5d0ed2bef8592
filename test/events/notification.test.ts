import { describe, expect, it } from 'bun:test'
import {
  RECORD_SEPARATOR,
  notificationRecords,
  notifiedUser,
  parseNotification,
} from '../../src/events/notification'

describe('event notifications', () => {
  it('carry the event, with any JSON data intact', () => {
    const data = { text: 'two\nlines, a tab\t and "quotes"', n: [1, 2] }
    const message = ['u1', '6-0', 'credits.changed', '1700', JSON.stringify(data)].join('\n')
    expect(notifiedUser(message)).toBe('u1')
    expect(parseNotification(message)).toEqual({
      userId: 'u1',
      carried: { id: '6-0', name: 'credits.changed', data, json: JSON.stringify(data), at: 1700 },
    })
  })

  it('come as records of one message per batch', () => {
    const records = ['u1\n6-0\ncredits.changed\n1700\n{"a":1}', 'u2']
    expect(notificationRecords(records.join(RECORD_SEPARATOR))).toEqual(records)
    expect(notificationRecords('u3')).toEqual(['u3'])
  })

  it('name the user alone when the event is not carried or not readable', () => {
    const cases = [
      'u2',
      'u2\n6-0',
      'u2\n6-0\nnot.an.event\n1700\n{}',
      'u2\nnot-an-id\ncredits.changed\n1700\n{}',
      'u2\n6-0\ncredits.changed\n1700\n{broken',
      'u2\n6-0\ncredits.changed\nnot-a-time\n{}',
    ]
    for (const message of cases) {
      expect(notifiedUser(message)).toBe('u2')
      expect(parseNotification(message)).toEqual({ userId: 'u2' })
    }
  })
})
