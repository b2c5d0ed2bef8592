import { t } from 'elysia'
import { JsonInteger, SafeString } from '../http/text'

export const Credentials = t.Object(
  {
    email: SafeString({ format: 'email', maxLength: 254, description: 'case-insensitive' }),
    password: SafeString({ minLength: 8, maxLength: 256 }),
  },
  { additionalProperties: false },
)

export const PublicUserSchema = t.Object({
  id: t.String(),
  email: t.Union([t.String(), t.Null()], {
    description: 'null only for a user provisioned from an identity provider without a free email',
  }),
  role: t.Union([t.Literal('user'), t.Literal('admin')]),
  createdAt: t.String({ format: 'date-time' }),
})

export const Session = t.Object({ user: PublicUserSchema, token: t.String() })

export const Me = t.Object({
  id: t.String(),
  email: t.Union([t.String(), t.Null()], {
    description: 'null only for a user provisioned from an identity provider without a free email',
  }),
  role: t.Union([t.Literal('user'), t.Literal('admin')]),
  balance: JsonInteger(),
  createdAt: t.String({ format: 'date-time' }),
})
