import { describe, expect, it } from 'bun:test'
import { notifiedUser, parseNotification } from '../../src/events/notification'

describe('event notifications', () => {
  it('carry the event and the id before it, with any JSON data intact', () => {
    const data = { text: 'two\nlines, a tab\t and "quotes"', n: [1, 2] }
    const message = ['u1', '5-0', '6-0', 'credits.changed', '1700', JSON.stringify(data)].join('\n')
    expect(notifiedUser(message)).toBe('u1')
    expect(parseNotification(message)).toEqual({
      userId: 'u1',
      carried: {
        previousId: '5-0',
        event: { id: '6-0', name: 'credits.changed', data, json: JSON.stringify(data), at: 1700 },
      },
    })
  })

  it('name the user alone when the event is not carried or not readable', () => {
    const cases = [
      'u2',
      'u2\n5-0\n6-0',
      'u2\n5-0\n6-0\nnot.an.event\n1700\n{}',
      'u2\n5-0\n6-0\ncredits.changed\n1700\n{broken',
    ]
    for (const message of cases) {
      expect(notifiedUser(message)).toBe('u2')
      expect(parseNotification(message)).toEqual({ userId: 'u2' })
    }
  })
})
