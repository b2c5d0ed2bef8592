/**
 * The child side of a benchmark's IPC: commands from the orchestrator are
 * run one at a time, in arrival order, and each gets exactly one reply
 * ({ ok, reply } or { ok: false, error }). The child says 'started' first,
 * and exits when the orchestrator goes away: nothing is left to report to.
 */
export function serveCommands<C>(run: (command: C) => Promise<unknown>) {
  let queue = Promise.resolve()
  process.on('message', (command: C) => {
    queue = queue.then(() =>
      run(command).then(
        (reply) => void process.send!({ ok: true, reply }),
        (error: Error) => void process.send!({ ok: false, error: String(error?.stack ?? error) }),
      ),
    )
  })
  process.on('disconnect', () => process.exit(1))
  process.send!({ ok: true, reply: 'started' })
}
