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

type Reply = { ok: true; reply: unknown } | { ok: false; error: string }

/**
 * A bench child over IPC: one command at a time, one reply each, in order.
 * Spawned through sh to raise its descriptor limit (each socket is one fd).
 */
export function spawnChild(name: string, script: string, env: Record<string, string>) {
  const waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = []
  const proc = Bun.spawn(
    [
      'sh',
      '-c',
      'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" $BENCH_BUN_FLAGS "$1"',
      process.execPath,
      script,
    ],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit'],
      ipc(message: Reply) {
        const w = waiting.shift()
        if (!w) return
        if (message.ok) w.resolve(message.reply)
        else w.reject(new Error(`${name}: ${message.error}`))
      },
    },
  )
  void proc.exited.then((code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`${name} exited with ${code}`))
  })
  const reply = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }))
  const started = reply()
  return {
    started,
    async call<T>(
      command: { cmd: string } & Record<string, unknown>,
      timeoutMs = 120_000,
    ): Promise<T> {
      const answer = reply()
      proc.send(command)
      let timer: ReturnType<typeof setTimeout> | undefined
      try {
        return (await Promise.race([
          answer,
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`${name}: no reply to ${command.cmd} in ${timeoutMs} ms`)),
              timeoutMs,
            )
          }),
        ])) as T
      } finally {
        clearTimeout(timer)
      }
    },
    /** Asks it to exit; kills it (this process's own child, by handle) if it does not. */
    async end() {
      if (proc.exitCode === null && !proc.killed) proc.send({ cmd: 'exit' })
      const timer = setTimeout(() => proc.kill(), 5000)
      await proc.exited
      clearTimeout(timer)
    },
  }
}

export type Child = ReturnType<typeof spawnChild>
