/**
 * The order of the drain stages (src/lifecycle/lifecycle.ts), in one place;
 * each room registers its own stage by name where it is made.
 *  - 'actor hand-off': this instance claims nothing more and releases the
 *    users it owns, so commands for them are claimed elsewhere at once and
 *    wait for nothing here; what is queued is forwarded to the new owners;
 *  - 'renderer pool': renders in flight finish or are handed back; their
 *    outcomes go through the actors (forwarded to the new owners), so the
 *    actors still take commands;
 *  - 'sweeper': no more sweeps (they too report through the actors);
 *  - 'actors': every mailbox finishes, new commands get 503;
 *  - 'events': the outbox relay sends what the actors' last commits wrote,
 *    while the sockets are still open to carry it live (what it cannot send,
 *    Redis down, stays in the outbox for whichever instance relays next);
 *  - 'sockets': every socket is told to reconnect and closed with 1012; a
 *    client that missed anything resumes from its last id elsewhere.
 */
export const DRAIN_ORDER = [
  'actor hand-off',
  'renderer pool',
  'sweeper',
  'actors',
  'events',
  'sockets',
] as const
