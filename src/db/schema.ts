import type { ActorOwnerTable } from '../actors/table'
import type { EventOutboxTable, EventSequenceTable } from '../events/table'
import type { GenerationItemTable, GenerationTable } from '../generation/table'
import type { IdempotencyKeyTable } from '../idempotency/table'
import type { CreditAccountTable, LedgerEntryTable, ProcessedWebhookTable } from '../ledger/table'
import type { PoseCategoryTable, PoseTable } from '../library/table'
import type { MediaTable, UploadTable } from '../media/table'
import type {
  StatsGenerationDayTable,
  StatsItemDayTable,
  StatsLedgerDayTable,
  StatsPoseDayTable,
} from '../stats/table'
import type { UserIdentityTable, UserTable } from '../users/table'

/** Every table kysely knows, by SQL name. Each room owns its table types. */
export interface DB {
  users: UserTable
  user_identities: UserIdentityTable
  credit_accounts: CreditAccountTable
  ledger_entries: LedgerEntryTable
  processed_webhooks: ProcessedWebhookTable
  idempotency_keys: IdempotencyKeyTable
  pose_categories: PoseCategoryTable
  poses: PoseTable
  media: MediaTable
  uploads: UploadTable
  generations: GenerationTable
  generation_items: GenerationItemTable
  event_sequences: EventSequenceTable
  event_outbox: EventOutboxTable
  actor_owners: ActorOwnerTable
  stats_ledger_days: StatsLedgerDayTable
  stats_item_days: StatsItemDayTable
  stats_pose_days: StatsPoseDayTable
  stats_generation_days: StatsGenerationDayTable
}
