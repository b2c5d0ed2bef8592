import { Type as T, type Static } from '@sinclair/typebox'

/**
 * Every environment variable Atelier reads. `description` is the fix shown
 * when a value is refused; `.env.example` and the README list the same set.
 */
const Int = (min: number, max: number, def: number, description: string) =>
  T.Integer({ minimum: min, maximum: max, default: def, description })
const Opt = (description: string, extra: Record<string, unknown> = {}) =>
  T.Optional(T.String({ minLength: 1, description, ...extra }))

export const EnvSchema = T.Object({
  NODE_ENV: T.Union([T.Literal('development'), T.Literal('test'), T.Literal('production')], {
    default: 'development',
    description: 'one of development, test, production',
  }),
  PORT: Int(0, 65535, 3000, 'a TCP port such as 3000'),
  HOST: T.String({ default: '0.0.0.0', description: 'the address to listen on, e.g. 0.0.0.0' }),
  LOG_LEVEL: T.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => T.Literal(l)),
    { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' },
  ),
  INSTANCE_ID: Opt('a short name for this instance (default: FLY_MACHINE_ID or a random id)'),
  FLY_MACHINE_ID: Opt('set by Fly.io'),
  FLY_REGION: Opt('set by Fly.io'),
  PRIMARY_REGION: Opt('the Fly.io region that owns actors and writes, e.g. ams', {
    pattern: '^[a-z0-9]{2,16}$',
  }),
  READ_YOUR_WRITES_MS: Int(
    0,
    600_000,
    5000,
    'milliseconds a client reads from the primary region after its write (0: off)',
  ),

  DATABASE_URL: Opt('a postgres:// URL (Postgres 15+); leave unset for embedded PGlite', {
    pattern: '^postgres(ql)?://',
  }),
  DATABASE_READ_URL: Opt('a postgres:// URL of a read replica', { pattern: '^postgres(ql)?://' }),
  DATA_DIR: T.String({ default: './data', description: 'a writable directory' }),
  DB_POOL_MAX: Int(1, 500, 10, 'the Postgres pool size, e.g. 10'),
  DB_STATEMENT_TIMEOUT_MS: Int(100, 600_000, 15_000, 'milliseconds, e.g. 15000'),
  DB_LOCK_TIMEOUT_MS: Int(10, 600_000, 5000, 'milliseconds a statement waits for a row lock'),
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: Int(
    100,
    600_000,
    5000,
    'milliseconds before Postgres ends a session left idle inside a transaction',
  ),
  DB_CONNECT_TIMEOUT_MS: Int(100, 60_000, 3000, 'milliseconds to get a connection (new or pooled)'),
  MIGRATE_ON_START: T.Boolean({ default: true, description: 'true or false' }),

  REDIS_URL: Opt('a redis:// URL (Redis 7+)', { pattern: '^rediss?://' }),
  REDIS_PREFIX: T.String({ default: 'atelier:', description: 'a key prefix such as atelier:' }),
  REDIS_COMMAND_TIMEOUT_MS: Int(
    50,
    60_000,
    1000,
    'milliseconds a Redis command may wait unsent (offline) before it fails',
  ),
  REDIS_QUEUE_MAX: Int(
    100,
    1_000_000,
    20_000,
    'Redis commands queued or in flight per connection before new ones fail at once',
  ),

  JWT_SECRET: Opt('a random string of at least 32 bytes (openssl rand -hex 32)'),
  JWKS_URL: Opt('the https URL of an identity provider key set', { pattern: '^https?://' }),
  JWT_TTL_SECONDS: Int(60, 30 * 86400, 86400, 'token lifetime in seconds, e.g. 86400'),
  ADMIN_EMAILS: T.String({ default: '', description: 'comma-separated emails' }),
  SIGNUP_CREDITS: T.Optional(
    T.Integer({
      minimum: 0,
      maximum: 1_000_000_000,
      description:
        'credits granted at registration (default: 1000 in embedded mode, 0 in server mode)',
    }),
  ),
  LOGIN_RATE_PER_EMAIL: Int(1, 100_000, 10, 'login attempts per email per window'),
  LOGIN_RATE_PER_IP: Int(1, 1_000_000, 50, 'login attempts per IP per window'),
  LOGIN_RATE_WINDOW_SECONDS: Int(1, 86400, 900, 'seconds, e.g. 900'),
  TRUST_PROXY: T.Boolean({
    default: false,
    description: 'true behind Fly.io or a proxy that sets Fly-Client-IP / X-Forwarded-For',
  }),

  ALLOWED_ORIGINS: T.String({
    default: '',
    description:
      'comma-separated browser origins, e.g. https://app.example.com (unset in embedded mode: http://localhost:PORT and http://127.0.0.1:PORT)',
  }),
  METRICS_TOKEN: Opt('a bearer token required by /metrics'),
  MAX_BODY_BYTES: Int(1024, 100 * 1024 * 1024, 1024 * 1024, 'bytes, e.g. 1048576'),
  DRAIN_TIMEOUT_MS: Int(100, 600_000, 10_000, 'milliseconds, below fly.toml kill_timeout'),
  DRAIN_READY_GRACE_MS: Int(
    0,
    600_000,
    2000,
    'milliseconds the listener stays open after readiness turns 503 on SIGTERM (at most half of DRAIN_TIMEOUT_MS)',
  ),
  IDEMPOTENCY_HOLD_MS: Int(
    1000,
    3_600_000,
    10_000,
    'milliseconds an in-flight Idempotency-Key holds after its request died',
  ),

  PAYMENT_WEBHOOK_SECRET: Opt('the shared secret of the payment provider webhook'),
  ACTOR_IDLE_MS: Int(100, 86_400_000, 60_000, 'milliseconds before an idle actor is passivated'),
  ACTOR_MAILBOX_CAPACITY: Int(1, 1_000_000, 1024, 'commands queued per actor'),
  ACTOR_BATCH_MAX: Int(1, 10_000, 256, 'commands per actor transaction'),
  ACTOR_LEASE_MS: Int(
    300,
    600_000,
    3000,
    'milliseconds an instance heartbeat lives (renewed every third): a crashed owner is taken over after it',
  ),
  ACTOR_FORWARD_TIMEOUT_MS: T.Optional(
    T.Integer({
      minimum: 100,
      maximum: 600_000,
      description:
        'milliseconds a forwarded actor command waits for its owner before 503 (default 2 x ACTOR_LEASE_MS + 2000)',
    }),
  ),
  ACTOR_BATCH_TIMEOUT_MS: Int(
    100,
    600_000,
    20_000,
    'milliseconds before an actor batch fails with 503 and the actor moves on',
  ),

  CREDITS_PER_IMAGE: Int(1, 1_000_000, 30, 'credits per image, e.g. 30'),
  CREDITS_PER_BACKGROUND: Int(0, 1_000_000, 10, 'credits per image with a background, e.g. 10'),
  MAX_IMAGES_PER_HOUR: Int(1, 1_000_000, 500, 'images accepted per user per rolling hour'),
  MAX_ACTIVE_GENERATIONS: Int(1, 10_000, 5, 'unfinished generations per user'),
  RENDERER: T.Union([T.Literal('local'), T.Literal('http')], {
    default: 'local',
    description: 'local (sharp, built in) or http (RENDER_HTTP_URL)',
  }),
  RENDER_CONCURRENCY: T.Optional(
    T.Integer({
      minimum: 0,
      maximum: 256,
      description:
        'renders at once on this instance (default: CPU cores; 0: accept only, render nothing)',
    }),
  ),
  RENDER_MAX_ATTEMPTS: Int(1, 20, 3, 'attempts per item before it fails'),
  RENDER_TIMEOUT_MS: Int(100, 600_000, 60_000, 'milliseconds per render attempt'),
  RENDER_LEASE_MS: Int(
    1000,
    600_000,
    30_000,
    'milliseconds an item stays leased without a heartbeat',
  ),
  RENDER_RETRY_BASE_MS: Int(
    1,
    600_000,
    1000,
    'first retry delay in milliseconds (doubles per attempt)',
  ),
  RENDER_SIZE: Int(64, 4096, 1024, 'rendered image edge in pixels, e.g. 1024'),
  RENDER_SWEEP_MS: Int(100, 600_000, 5000, 'milliseconds between stalled-item and deadline sweeps'),
  RENDER_HTTP_URL: Opt('the inference API render endpoint (https://…)', { pattern: '^https?://' }),
  RENDER_HTTP_TOKEN: Opt('the inference API bearer token'),
  RENDER_HTTP_CONCURRENCY: Int(1, 1000, 4, 'requests in flight to the inference API per instance'),
  RENDER_BREAKER_THRESHOLD: Int(1, 1000, 5, 'consecutive failures that open the circuit breaker'),
  RENDER_BREAKER_COOLDOWN_MS: Int(100, 3_600_000, 30_000, 'milliseconds the breaker stays open'),
  MEDIA_STORAGE: T.Union([T.Literal('local'), T.Literal('s3')], {
    default: 'local',
    description: 'local (DATA_DIR/media) or s3 (S3_* variables)',
  }),
  MAX_UPLOAD_BYTES: Int(
    1024,
    100 * 1024 * 1024,
    10 * 1024 * 1024,
    'bytes per uploaded file, e.g. 10485760',
  ),
  MAX_UPLOADS_PER_HOUR: Int(1, 1_000_000, 100, 'uploads per user per rolling hour'),
  UPLOAD_QUOTA_BYTES: Int(
    1024,
    Number.MAX_SAFE_INTEGER,
    1024 ** 3,
    'bytes of uploads kept per user, e.g. 1073741824',
  ),
  MEDIA_URL_SECRET: Opt(
    'a random string of at least 32 bytes that signs media URLs (openssl rand -hex 32); required in production',
  ),
  MEDIA_URL_TTL_SECONDS: Int(60, 7 * 86400, 3600, 'lifetime of signed media URLs in seconds'),
  S3_BUCKET: Opt('the bucket name'),
  S3_ENDPOINT: Opt('the S3-compatible endpoint URL', { pattern: '^https?://' }),
  S3_REGION: Opt('the bucket region, e.g. auto or us-east-1'),
  S3_ACCESS_KEY_ID: Opt('the access key id'),
  S3_SECRET_ACCESS_KEY: Opt('the secret access key'),
  POSE_CACHE_ENTRIES: Int(0, 1_000_000, 1000, 'pose reads cached per instance (0: no cache)'),
  POSE_CACHE_TTL_SECONDS: Int(1, 86400, 60, 'seconds a cached pose read is served'),

  EVENT_HISTORY: Int(10, 1_000_000, 1000, 'events kept per user for resume, e.g. 1000'),
  EVENT_TTL_SECONDS: Int(60, 365 * 86400, 7 * 86400, 'seconds an event stream lives unwritten'),
  OUTBOX_POLL_MS: Int(
    50,
    60_000,
    1000,
    'milliseconds between outbox relay polls (crash leftovers)',
  ),
  OUTBOX_RETENTION_SECONDS: Int(0, 7 * 86400, 300, 'seconds relayed events stay in the outbox'),
  WS_SEND_BUFFER_BYTES: Int(
    16 * 1024,
    64 * 1024 * 1024,
    1024 * 1024,
    'bytes queued per WebSocket before a slow client is closed with 1013',
  ),
  WS_MAX_SOCKETS_PER_USER: Int(
    1,
    100_000,
    32,
    'authenticated WebSockets per user per instance; the next one closes with 1008',
  ),
})

export type Env = Static<typeof EnvSchema>
