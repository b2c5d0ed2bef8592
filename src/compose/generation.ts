import type { Config } from '../config/config'
import type { GenerationCommand, GenerationResult } from '../generation/commands'
import { makeProducer } from '../generation/produce'
import { makeRendererPool } from '../generation/queue/pool'
import { makeSweeper } from '../generation/queue/sweeper'
import { makeHttpRenderer } from '../generation/renderers/http'
import { makeLocalRenderer } from '../generation/renderers/local'
import { makeGenerations } from '../generation/service'
import type { Library } from '../library/service'
import type { Logger } from '../obs/logger'
import type { composeMedia } from './content'
import type { Foundation } from './foundation'

export type GenerationDeps = {
  media: ReturnType<typeof composeMedia>
  library: Library
  askGeneration: (userId: string, command: GenerationCommand) => Promise<GenerationResult>
}

/**
 * The generation room: the renderer (RENDERER: local or http), the
 * renderer pool and the sweeper over the work queue, and the service the
 * routes call. Outside the primary region (Fly.io) nothing claims or sweeps.
 */
export function composeGeneration(
  f: Foundation,
  config: Config,
  log: Logger,
  deps: GenerationDeps,
) {
  const { media, library, askGeneration } = deps
  const renderer =
    config.RENDERER === 'http'
      ? makeHttpRenderer({
          url: config.RENDER_HTTP_URL!,
          token: config.RENDER_HTTP_TOKEN ?? '',
          timeoutMs: config.RENDER_TIMEOUT_MS,
          maxConcurrency: config.RENDER_HTTP_CONCURRENCY,
          breaker: {
            failureThreshold: config.RENDER_BREAKER_THRESHOLD,
            cooldownMs: config.RENDER_BREAKER_COOLDOWN_MS,
          },
        })
      : makeLocalRenderer()
  f.lifecycle.onClose('renderer', renderer.close)
  const pool = makeRendererPool({
    db: f.database.db,
    instanceId: config.instanceId,
    produce: makeProducer({
      db: f.database.db,
      storage: media.storage,
      renderer,
      size: config.RENDER_SIZE,
      loadUpload: media.uploads.load,
    }),
    ask: askGeneration,
    loadPose: library.load,
    log: log.child({ room: 'generation' }),
    metrics: f.metrics,
    // outside the primary region (Fly.io) it claims nothing: 0 slots
    concurrency: config.isPrimaryRegion ? config.renderConcurrency : 0,
    leaseMs: config.RENDER_LEASE_MS,
    maxAttempts: config.RENDER_MAX_ATTEMPTS,
    timeoutMs: config.RENDER_TIMEOUT_MS,
    retryBaseMs: config.RENDER_RETRY_BASE_MS,
    drainWaitMs: Math.floor(config.DRAIN_TIMEOUT_MS / 2),
  })
  f.lifecycle.onDrain('renderer pool', pool.drain)
  f.lifecycle.onClose('renderer pool', pool.close)
  const sweeper = makeSweeper({
    db: f.database.db,
    ask: askGeneration,
    maxAttempts: config.RENDER_MAX_ATTEMPTS,
    intervalMs: config.RENDER_SWEEP_MS,
    log: log.child({ room: 'generation' }),
    enabled: config.isPrimaryRegion,
  })
  f.lifecycle.onDrain('sweeper', sweeper.close)
  f.lifecycle.onClose('sweeper', sweeper.close)
  const generations = makeGenerations({
    db: f.database.db,
    readDb: f.regionReadDb,
    ask: askGeneration,
    urls: media.urls,
    pricing: { perImage: config.CREDITS_PER_IMAGE, perBackground: config.CREDITS_PER_BACKGROUND },
    existingPoses: library.existing,
    ownsUpload: async (userId, id) => (await media.uploads.findOwn(userId, id)) !== undefined,
    wake: () => void pool.wake(),
  })
  return { renderer, pool, sweeper, generations }
}
