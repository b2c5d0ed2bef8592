/**
 * The idempotency keys of ledger commands, spelled in one place. Each names
 * the one effect it may have per user: a command applied again with the same
 * key is a replay (ledger_apply answers it without a second entry).
 */
export const ledgerKeys = {
  /** The charge for a generation, by the command key of its request. */
  generationCharge: (commandKey: string) => `gen:${commandKey}`,
  /** The refund of one failed or cancelled item. */
  itemRefund: (itemId: string) => `refund:item:${itemId}`,
  /** A payment provider's purchase, by its payment id. */
  purchase: (paymentId: string) => `payment:${paymentId}`,
  /** An admin's grant, by the admin and the request's command key. */
  adminGrant: (adminId: string, commandKey: string) => `admin:${adminId}:${commandKey}`,
  /** The signup grant: once per user, at registration. */
  signupGrant: () => 'signup',
} as const
