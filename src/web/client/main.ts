import { api, get, session } from './api'
import { byId, debounce } from './dom'
import { sentence } from './errors'
import { makeGenerateForm } from './generate-form'
import { makeGenerations } from './generations'
import { makeLedger } from './ledger'
import { makePosePicker } from './poses'
import { makeRealtime, type Connection } from './realtime'
import { makeStatsPanel } from './stats'
import { makeReference } from './reference'
import type { User } from './types'

/**
 * The page's entry point: signs in (or up), then keeps balance, generations
 * and ledger current from REST plus the live socket. Served as /app.js.
 */
const authSection = byId('auth')
const authForm = byId<HTMLFormElement>('auth-form')
const workspace = byId('workspace')
const account = byId('account')
const who = byId('who')
const balance = byId('balance')
const connection = byId('connection')
const notice = byId('notice')

const notify = (message: string) => {
  notice.textContent = message
  notice.hidden = message === ''
}

const poses = makePosePicker({ onChange: () => form.selectionChanged() })
const generations = makeGenerations({ nameOf: poses.nameOf, notify })
const ledger = makeLedger()
const stats = makeStatsPanel()
const reference = makeReference({ notify })
const form = makeGenerateForm({
  poses,
  uploadId: reference.uploadId,
  added: generations.added,
  notify,
})

// a REST balance read that started before the latest credits.changed is stale: drop it
let balanceVersion = 0
function showBalance(value: number) {
  balance.textContent = String(value)
}
async function loadBalance() {
  const version = balanceVersion
  const { balance: value } = await get<{ balance: number }>('/v1/credits')
  if (version === balanceVersion) showBalance(value)
}

// a generation's charge and refunds arrive in bursts: one reload per burst
const refreshLedger = debounce(() => void ledger.reload(), 300)
const refreshStats = debounce(() => void stats.reload(), 300)

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  stopped: '',
  failed: 'live updates stopped: reload the page',
}

const realtime = makeRealtime({
  event(name, data) {
    if (name === 'credits.changed') {
      balanceVersion++
      if (typeof data.balance === 'number') showBalance(data.balance)
      refreshLedger()
      refreshStats()
    } else {
      generations.event(name, data)
      if (name === 'generation.item' || name === 'generation.finished') refreshStats()
    }
  },
  resync: () => void reload(),
  status(state) {
    connection.textContent = CONNECTION_TEXT[state]
    connection.dataset.state = state
  },
  unauthorized: () => signOut('Your session has ended. Please sign in again.'),
})

async function reload() {
  await Promise.all([
    loadBalance().catch(() => {}),
    generations.reload().catch((e) => notify(sentence(e, 'request'))),
    ledger.reload(),
    stats.reload(),
  ])
}

async function signedIn(user: User) {
  who.textContent = user.email
  if (typeof user.balance === 'number') showBalance(user.balance)
  authSection.hidden = true
  workspace.hidden = false
  account.hidden = false
  notify('')
  realtime.start()
  await Promise.all([poses.load(), reload()])
}

function signOut(message = '') {
  realtime.stop()
  session.clear()
  generations.clear()
  ledger.clear()
  stats.clear()
  poses.clear()
  reference.clear()
  workspace.hidden = true
  account.hidden = true
  authSection.hidden = false
  notify(message)
  byId<HTMLInputElement>('email').focus()
}

authForm.addEventListener('submit', async (e) => {
  e.preventDefault()
  const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null
  const path = submitter?.value === 'register' ? '/v1/auth/register' : '/v1/auth/login'
  const data = new FormData(authForm)
  const buttons = authForm.querySelectorAll('button')
  buttons.forEach((b) => (b.disabled = true))
  try {
    const body = { email: String(data.get('email')), password: String(data.get('password')) }
    const { user, token } = await api<{ user: User; token: string }>('POST', path, { body })
    session.save(token)
    authForm.reset()
    await signedIn(user)
  } catch (error) {
    notify(sentence(error, 'sign-in'))
  } finally {
    buttons.forEach((b) => (b.disabled = false))
  }
})

byId('sign-out').addEventListener('click', () => signOut())

async function start() {
  if (!session.token()) return signOut()
  try {
    await signedIn(await get<User>('/v1/me'))
  } catch (error) {
    signOut(sentence(error, 'request'))
  }
}

void start()
