/**
 * Input schemas shared by the collector (validation, OpenAPI) and, as types only,
 * by the snippet. One schema per input, named `<Thing><Action>Schema`, with its
 * inferred type beside it.
 */
import { z } from 'zod';

/** Hard limits that several schemas share. */
export const LIMITS = {
  externalId: 255,
  eventId: 255,
  visitorId: 64,
  url: 2048,
  name: 200,
  maxOrigins: 50,
  maxRules: 100,
} as const;

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(LIMITS.url);

/** An origin such as `https://shop.example`; any path is dropped. */
const origin = httpUrl.transform((value) => new URL(value).origin);

/** The ISO 4217 codes the runtime knows (`XYZ` is three letters, not money). */
const ISO_4217: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

/** ISO 4217 code, normalised to upper case. */
export const CurrencySchema = z
  .string()
  .refine((value) => ISO_4217.has(value.toUpperCase()), 'must be an ISO 4217 currency code such as USD or EUR')
  .transform((value) => value.toUpperCase());

/**
 * Money in integer minor units (cents): 4900 is $49.00. `49.00` in JSON is the number
 * 49, i.e. 49 cents, and nothing can tell the two apart, hence the words everywhere.
 */
const MINOR_UNITS = 'integer minor units, e.g. 4900 = $49.00';
const minorUnits = z
  .number({ error: `must be a number in ${MINOR_UNITS}` })
  .int(`must be an integer: amounts are ${MINOR_UNITS} (not 49.00)`)
  .min(0)
  .max(1e12)
  .describe(`Money in ${MINOR_UNITS} (cents for USD and EUR; whole yen for JPY). Not 49.00: JSON reads that as 49, i.e. $0.49.`);

/** Normalised email: trimmed and lower-cased before it is checked. */
export const EmailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.email({ error: 'must be an email address' }).max(320));

/** PostgreSQL text cannot hold NUL characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching NUL is the point
const NO_NUL = /^[^\u0000]*$/;

/** Broken UTF-16 (a lone surrogate) would be stored as U+FFFD, making two ids one. */
const wellFormed = (value: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value);

/** The host application's own user id. */
export const ExternalIdSchema = z
  .string()
  .min(1)
  .max(LIMITS.externalId)
  .regex(NO_NUL, 'must not contain NUL characters')
  .refine(wellFormed, 'must be well-formed Unicode');

/** A referral code a person may choose: 3–32 of `[A-Za-z0-9_-]`. */
export const VanityCodeSchema = z.string().regex(/^[A-Za-z0-9_-]{3,32}$/, 'must be 3–32 characters of A–Z, a–z, 0–9, _ or -');

/** Any code that may arrive from a link or a browser (looked up, never trusted). */
export const CodeLookupSchema = z.string().min(1).max(64).regex(NO_NUL, 'must not contain NUL characters');

export const VisitorIdSchema = z
  .string()
  .min(8)
  .max(LIMITS.visitorId)
  .regex(/^[A-Za-z0-9_-]+$/);

export const EventIdSchema = z
  .string()
  .min(1)
  .max(LIMITS.eventId)
  .regex(NO_NUL, 'must not contain NUL characters')
  .refine(wellFormed, 'must be well-formed Unicode');

export const RewardRuleSchema = z
  .object({
    /** Unique within the program; rewards remember which rule granted them. */
    id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1–64 characters of A–Z, 0–9, _ . -'),
    on: z.enum(['signup', 'purchase']),
    to: z.enum(['referrer', 'referee', 'both']),
    reward: z.object({
      kind: z.enum(['credit', 'cash', 'coupon']),
      /** Fixed amount in integer minor units. */
      amount: minorUnits.optional(),
      /** Percent of the purchase amount (floored), in the purchase currency. */
      percent: z.number().gt(0).max(100).optional(),
      currency: CurrencySchema.optional(),
      coupon: z.string().min(1).max(100).optional(),
    }),
    when: z
      .object({
        firstPurchaseOnly: z.boolean().optional(),
        minAmount: minorUnits.optional(),
        /** Only purchases after the customer's first (renewals, repeat orders); the complement of firstPurchaseOnly. */
        repeatPurchasesOnly: z.boolean().optional(),
        /** Tier: applies from the referrer's Nth attributed referral on (the Nth, the N+1th, …). */
        afterReferrals: z.number().int().min(1).optional(),
        /** Milestone: pays once, at the referrer's Nth attributed referral. */
        atReferrals: z.number().int().min(1).max(100_000).optional(),
        /** Only purchases within N days of the referral. */
        withinDays: z.number().int().min(1).max(3650).optional(),
      })
      .optional(),
    /** Days the reward stays pending before it is released. */
    holdDays: z.number().int().min(0).max(3650).optional(),
    cap: z.object({ perReferrer: z.number().int().min(1).optional() }).optional(),
  })
  .superRefine((rule, ctx) => {
    const { amount, percent, currency, coupon, kind } = rule.reward;
    if (amount !== undefined && percent !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['reward', 'percent'], message: 'give amount or percent, not both' });
    }
    if (kind === 'coupon' && !coupon) {
      ctx.addIssue({ code: 'custom', path: ['reward', 'coupon'], message: 'a coupon reward needs a coupon' });
    }
    if (kind !== 'coupon' && amount === undefined && percent === undefined) {
      ctx.addIssue({ code: 'custom', path: ['reward', 'amount'], message: 'give an amount or a percent' });
    }
    if (amount !== undefined && !currency) {
      ctx.addIssue({ code: 'custom', path: ['reward', 'currency'], message: 'a fixed amount needs a currency' });
    }
    if (percent !== undefined && rule.on !== 'purchase') {
      ctx.addIssue({ code: 'custom', path: ['reward', 'percent'], message: 'percent rewards apply to purchases only' });
    }
    const when = rule.when ?? {};
    if (
      rule.on === 'signup' &&
      (when.firstPurchaseOnly || when.repeatPurchasesOnly || when.minAmount !== undefined || when.withinDays !== undefined)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['when'],
        message: 'firstPurchaseOnly, repeatPurchasesOnly, minAmount and withinDays apply to purchase rules only',
      });
    }
    if (when.firstPurchaseOnly && when.repeatPurchasesOnly) {
      ctx.addIssue({
        code: 'custom',
        path: ['when', 'repeatPurchasesOnly'],
        message: 'a rule cannot be for first purchases only and repeat purchases only; make two rules',
      });
    }
    if (when.atReferrals !== undefined && when.afterReferrals !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['when', 'atReferrals'],
        message: 'give atReferrals (once, at the Nth referral) or afterReferrals (from the Nth on), not both',
      });
    }
  });
export type RewardRule = z.infer<typeof RewardRuleSchema>;

export const FraudSettingsSchema = z.object({
  /** Hold a referral when more than `velocityMax` signups for one referrer share an IP… */
  velocityMax: z.number().int().min(1).max(10_000).default(3),
  /** …within this many minutes. */
  velocityMinutes: z.number().int().min(1).max(10_080).default(60),
  /** Extra disposable email domains, on top of the built-in list. */
  disposableDomains: z
    .array(
      z
        .string()
        .trim()
        .toLowerCase()
        .regex(/^[a-z0-9.-]+\.[a-z]{2,}$/, 'must be a domain'),
    )
    .max(10_000)
    .default([]),
});

/** How a referrer is paid: by hand, a PayPal or Wise bulk file, or Stripe Connect transfers. */
export const PayoutMethodSchema = z.enum(['manual', 'paypal', 'wise', 'stripe_connect']);
export type PayoutMethod = z.infer<typeof PayoutMethodSchema>;

/** A participant's payout details; PayPal and Wise need an email, Stripe Connect a connected account. */
export const PayoutDetailsSchema = z
  .object({
    method: PayoutMethodSchema,
    /** Where PayPal or Wise sends the money. */
    email: z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.email({ error: 'must be an email address' }).max(320))
      .optional(),
    /** The referrer's Stripe connected account, `acct_…`. */
    stripeAccount: z
      .string()
      .regex(/^acct_[A-Za-z0-9]{1,64}$/, 'must be a Stripe connected account id (acct_…)')
      .optional(),
  })
  .strict()
  .superRefine((details, ctx) => {
    if ((details.method === 'paypal' || details.method === 'wise') && !details.email) {
      ctx.addIssue({ code: 'custom', path: ['email'], message: `${details.method} payouts need the email address to pay` });
    }
    if (details.method === 'stripe_connect' && !details.stripeAccount) {
      ctx.addIssue({ code: 'custom', path: ['stripeAccount'], message: 'Stripe Connect payouts need the connected account id (acct_…)' });
    }
  });
export type PayoutDetails = z.infer<typeof PayoutDetailsSchema>;

/** PATCH /v1/participants/:externalId: payout details (null clears them). */
export const ParticipantUpdateSchema = z.object({ payout: PayoutDetailsSchema.nullable() }).strict();
export type ParticipantUpdate = z.infer<typeof ParticipantUpdateSchema>;

/** A program's payout rules. */
export const PayoutSettingsSchema = z
  .object({
    /** Per currency, in integer minor units: smaller items wait for a later run. */
    minimum: z.record(CurrencySchema, minorUnits).optional(),
    /** For referrers who gave no method of their own. */
    method: PayoutMethodSchema.optional(),
  })
  .strict();

/** The emails the collector sends to referrers. */
export const EmailKindSchema = z.enum(['referral', 'rewardApproved', 'payoutPaid']);
export type EmailKind = z.infer<typeof EmailKindSchema>;

/** `team@shop.example` or `Shop Team <team@shop.example>`: one sender, no line breaks. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const MAILBOX = /^(?:([^<>\r\n\u0000-\u001f\u007f]{1,200}?)\s*<([^<>\s]+)>|([^<>\s]+))$/;

/** A sender as name and address (null when `value` is not one). */
export function parseMailbox(value: string): { name: string | null; address: string } | null {
  const match = MAILBOX.exec(value.trim());
  if (!match) return null;
  const address = (match[2] ?? match[3] ?? '').trim();
  if (!z.email().max(320).safeParse(address).success) return null;
  const name = match[1]?.trim().replace(/^"(.*)"$/, '$1') || null;
  return { name, address };
}

/** `settings.emails`: who emails come from and which ones go out (SMTP_URL must be set too). */
export const EmailSettingsSchema = z
  .object({
    /** The sender: an email address or `Name <email>`. */
    from: z
      .string()
      .trim()
      .max(600)
      .refine((value) => parseMailbox(value) !== null, 'must be an email address or "Name <email>"'),
    /** Each email goes out only when true here: a new referral (to the referrer), a reward approved, a payout paid. */
    on: z.object({ referral: z.boolean(), rewardApproved: z.boolean(), payoutPaid: z.boolean() }).partial().strict().default({}),
  })
  .strict();
export type EmailSettings = z.infer<typeof EmailSettingsSchema>;

/** GET and POST /v1/emails/unsubscribe: the signed token from the email's link. */
export const EmailUnsubscribeQuerySchema = z.object({
  /** The token in the email's unsubscribe link (signed; names one participant and which emails). */
  token: z.string().min(1).max(200),
});
export type EmailUnsubscribeQuery = z.infer<typeof EmailUnsubscribeQuerySchema>;

export const ProgramSettingsSchema = z
  .object({
    origins: z.array(origin).max(LIMITS.maxOrigins),
    landingUrl: httpUrl,
    cookieDays: z.number().int().min(1).max(730).default(60),
    attribution: z.enum(['first', 'last']).default('first'),
    windowDays: z.number().int().min(1).max(730).default(60),
    rewardRules: z.array(RewardRuleSchema).max(LIMITS.maxRules).default([]),
    fraud: FraudSettingsSchema.default({ velocityMax: 3, velocityMinutes: 60, disposableDomains: [] }),
    /** Where reward and referral webhooks are POSTed. */
    webhookUrl: httpUrl.optional(),
    /** Emails to referrers: the sender and which events send one (only with SMTP_URL set). */
    emails: EmailSettingsSchema.optional(),
    stripe: z
      .object({
        webhookSecret: z.string().min(1).max(500).optional(),
        /** A restricted or secret API key, for Stripe Connect payouts (never shown back). */
        secretKey: z
          .string()
          .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]{8,255}$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)')
          .optional(),
      })
      .optional(),
    /** Paddle Billing: the notification destination's secret key (never shown back). */
    paddle: z.object({ webhookSecret: z.string().min(1).max(500).optional() }).optional(),
    /** Lemon Squeezy: the webhook's signing secret, and an API key to read which discount code an order used (never shown back). */
    lemonsqueezy: z
      .object({ webhookSecret: z.string().min(6).max(500).optional(), apiKey: z.string().min(1).max(2000).optional() })
      .optional(),
    payouts: PayoutSettingsSchema.optional(),
  })
  .superRefine((settings, ctx) => {
    const seen = new Set<string>();
    settings.rewardRules.forEach((rule, index) => {
      if (seen.has(rule.id)) {
        ctx.addIssue({ code: 'custom', path: ['rewardRules', index, 'id'], message: `duplicate rule id "${rule.id}"` });
      }
      seen.add(rule.id);
    });
  });
export type ProgramSettings = z.infer<typeof ProgramSettingsSchema>;
export type ProgramSettingsInput = z.input<typeof ProgramSettingsSchema>;

/** Settings a caller may send: every field optional, merged over what is stored. */
export const ProgramSettingsPatchSchema = z
  .object({
    origins: z.array(z.unknown()),
    landingUrl: z.unknown(),
    cookieDays: z.unknown(),
    attribution: z.unknown(),
    windowDays: z.unknown(),
    rewardRules: z.array(z.unknown()),
    fraud: z.record(z.string(), z.unknown()),
    webhookUrl: z.unknown(),
    emails: z.unknown(),
    stripe: z.unknown(),
    paddle: z.unknown(),
    lemonsqueezy: z.unknown(),
    payouts: z.unknown(),
  })
  .partial()
  .strict();

export const ProgramCreateSchema = z.object({
  name: z.string().trim().min(1).max(LIMITS.name),
  origins: z.array(z.string()).max(LIMITS.maxOrigins),
  landingUrl: z.string(),
  settings: ProgramSettingsPatchSchema.optional(),
});
export type ProgramCreate = z.infer<typeof ProgramCreateSchema>;

export const ProgramUpdateSchema = z.object({
  name: z.string().trim().min(1).max(LIMITS.name).optional(),
  settings: ProgramSettingsPatchSchema.optional(),
});
export type ProgramUpdate = z.infer<typeof ProgramUpdateSchema>;

export const ParticipantCreateSchema = z.object({
  externalId: ExternalIdSchema,
  email: EmailSchema.optional(),
  name: z.string().trim().min(1).max(LIMITS.name).optional(),
  /** A vanity code; a random one is generated when absent. */
  code: VanityCodeSchema.optional(),
});
export type ParticipantCreate = z.infer<typeof ParticipantCreateSchema>;

/** A click reported by the snippet (publishable key in the body, for sendBeacon). */
export const ClickCreateSchema = z.object({
  key: z.string().min(1).max(200),
  code: CodeLookupSchema,
  vid: VisitorIdSchema,
  url: z.string().max(LIMITS.url).optional(),
  referrer: z.string().max(LIMITS.url).optional(),
});
export type ClickCreate = z.infer<typeof ClickCreateSchema>;

const ReferralHintSchema = z.object({
  code: CodeLookupSchema.optional(),
  vid: VisitorIdSchema.optional(),
});

/** A signup or purchase reported from the browser: unverified. */
export const EventCreateSchema = z
  .object({
    key: z.string().min(1).max(200),
    type: z.enum(['signup', 'purchase']),
    eventId: EventIdSchema,
    vid: VisitorIdSchema,
    code: CodeLookupSchema.optional(),
    user: z.object({ id: ExternalIdSchema, email: EmailSchema.optional() }),
    order: z.object({ id: EventIdSchema, amount: minorUnits, currency: CurrencySchema }).optional(),
  })
  .superRefine((event, ctx) => {
    if (event.type === 'purchase' && !event.order) {
      ctx.addIssue({ code: 'custom', path: ['order'], message: 'a purchase needs an order' });
    }
  });
export type EventCreate = z.infer<typeof EventCreateSchema>;

/** A signup or purchase reported by the host's backend: verified. */
export const ConversionCreateSchema = z
  .object({
    type: z.enum(['signup', 'purchase']),
    eventId: EventIdSchema,
    externalId: ExternalIdSchema,
    email: EmailSchema.optional(),
    name: z.string().trim().min(1).max(LIMITS.name).optional(),
    referral: ReferralHintSchema.optional(),
    amount: minorUnits.optional(),
    currency: CurrencySchema.optional(),
  })
  .superRefine((conversion, ctx) => {
    if (conversion.type === 'purchase') {
      if (conversion.amount === undefined) ctx.addIssue({ code: 'custom', path: ['amount'], message: 'a purchase needs an amount' });
      if (conversion.currency === undefined) ctx.addIssue({ code: 'custom', path: ['currency'], message: 'a purchase needs a currency' });
    }
  });
export type ConversionCreate = z.infer<typeof ConversionCreateSchema>;

export const RefundCreateSchema = z.object({
  eventId: EventIdSchema,
  purchaseEventId: EventIdSchema,
  /** Refunded amount in minor units; the whole purchase when absent. */
  amount: minorUnits.optional().describe(`The refunded amount in ${MINOR_UNITS}; the whole purchase when absent.`),
});
export type RefundCreate = z.infer<typeof RefundCreateSchema>;

/** Paging for list endpoints: an opaque cursor and a page size. */
export const PageQuerySchema = z.object({
  /** Items per page. */
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Where the previous page ended: its `nextCursor`, as given. */
  cursor: z.string().max(200).optional().describe('nextCursor of the previous page'),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

/** A participant named by the host's own user id, as a list filter. */
const externalIdFilter = z.string().min(1).max(LIMITS.externalId).optional().describe('an externalId');

/** GET /v1/referrals: newest first. */
export const ReferralQuerySchema = PageQuerySchema.extend({
  /** Only this referrer's referrals (their externalId). */
  referrer: externalIdFilter,
  /** Held referrals wait for review; attributed ones count. */
  status: z.enum(['attributed', 'held']).optional(),
});
export type ReferralQuery = z.infer<typeof ReferralQuerySchema>;

/** GET /v1/decisions: newest first. */
export const DecisionQuerySchema = PageQuerySchema.extend({
  /** A decision reason such as `self_referral`. */
  reason: z
    .string()
    .regex(/^[a-z_]{1,64}$/, 'must be a snake_case reason')
    .optional(),
  /** What was decided about. */
  subject: z.enum(['click', 'attribution', 'conversion', 'reward']).optional(),
  /** Held outcomes wait for review. */
  outcome: z.enum(['accepted', 'rejected', 'held']).optional(),
  /** Only decisions about this customer (their externalId). */
  participant: externalIdFilter,
});
export type DecisionQuery = z.infer<typeof DecisionQuerySchema>;

/** GET /v1/rewards: the ledger, newest first. */
export const RewardQuerySchema = PageQuerySchema.extend({
  /** Where the entries stand: pending → approved → paid, or revoked. */
  status: z.enum(['pending', 'approved', 'paid', 'revoked']).optional(),
  /** Only this beneficiary's rewards (their externalId). */
  participant: externalIdFilter,
});
export type RewardQuery = z.infer<typeof RewardQuerySchema>;

/** GET /v1/webhooks/deliveries: newest first. */
export const DeliveryQuerySchema = PageQuerySchema.extend({
  /** Pending ones are still being retried; failed ones gave up. */
  status: z.enum(['pending', 'delivered', 'failed']).optional(),
});
export type DeliveryQuery = z.infer<typeof DeliveryQuerySchema>;

/** The payment providers whose webhooks the collector reads. */
export const PaymentProviderSchema = z.enum(['stripe', 'paddle', 'lemonsqueezy']);
export type PaymentProvider = z.infer<typeof PaymentProviderSchema>;

/**
 * POST /v1/participants/:externalId/promo-codes: a provider's discount that attributes
 * the paid events carrying it to this participant.
 */
export const PromoCodeCreateSchema = z
  .object({
    provider: PaymentProviderSchema,
    /** The provider's id of the discount: a Stripe promotion code (`promo_…`), a Paddle discount (`dsc_…`), a Lemon Squeezy discount id. */
    id: z.string().trim().min(1).max(255).regex(NO_NUL, 'must not contain NUL characters').optional(),
    /** The text a customer types at checkout (matched case-insensitively). */
    code: z.string().trim().min(1).max(100).regex(NO_NUL, 'must not contain NUL characters'),
    /** Stripe only: create the promotion code in Stripe (settings.stripe.secretKey) for this coupon; its id is then stored. */
    create: z.boolean().optional(),
    /** Stripe only, with `create`: the coupon the promotion code applies. */
    coupon: z.string().trim().min(1).max(255).optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (input.create && input.provider !== 'stripe')
      ctx.addIssue({ code: 'custom', path: ['create'], message: 'only Stripe promotion codes can be created here' });
    if (input.create && !input.coupon)
      ctx.addIssue({ code: 'custom', path: ['coupon'], message: 'creating a Stripe promotion code needs the coupon id it applies' });
    if (input.create && input.id)
      ctx.addIssue({ code: 'custom', path: ['id'], message: 'a promotion code created here gets its id from Stripe' });
    // Stripe and Paddle name a discount by its id only in their webhooks.
    if (!input.id && !input.create && input.provider !== 'lemonsqueezy')
      ctx.addIssue({
        code: 'custom',
        path: ['id'],
        message:
          input.provider === 'stripe'
            ? 'Stripe webhooks name the promotion code by its id (promo_…): give it, or create: true with a coupon'
            : 'Paddle transactions name the discount by its id (dsc_…): give it',
      });
  });
export type PromoCodeCreate = z.infer<typeof PromoCodeCreateSchema>;

/**
 * A verified Stripe webhook event: the envelope we read. Payloads carry many more
 * fields; unknown ones are ignored, and `data.object` is read per event type.
 */
export const StripeEventSchema = z.object({
  /** `evt_…`: a redelivered event carries the same id. */
  id: z.string().min(1).max(255),
  /** e.g. `checkout.session.completed`, `invoice.paid`, `charge.refunded`. */
  type: z.string().max(255),
  data: z.object({ object: z.unknown() }),
});
export type StripeEvent = z.infer<typeof StripeEventSchema>;

export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    fields: z.record(z.string(), z.string()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

const isoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD')
  .refine((value) => value >= '1970-01-01' && value <= '2999-12-31', 'must be between 1970-01-01 and 2999-12-31')
  .refine(
    (value) => !Number.isNaN(Date.parse(`${value}T00:00:00Z`)) && new Date(`${value}T00:00:00Z`).toISOString().startsWith(value),
    'must be a real calendar date',
  );

/** A report's or export's date range (UTC days, both ends included); defaults to the last 30 days. */
export const ReportRangeSchema = z.object({
  /** First day, YYYY-MM-DD (default: 29 days before `to`). */
  from: isoDay.optional(),
  /** Last day, YYYY-MM-DD (default: today, UTC). */
  to: isoDay.optional(),
});
export type ReportRange = z.infer<typeof ReportRangeSchema>;

/** GET /v1/reports/referrers: the leaderboard, paged by offset. */
export const ReportReferrersQuerySchema = ReportRangeSchema.extend({
  /** The figure to rank by. */
  sort: z.enum(['clicks', 'visitors', 'signups', 'purchases', 'conversionRate']).default('signups'),
  /** Highest first by default. */
  order: z.enum(['asc', 'desc']).default('desc'),
  /** Rows per page. */
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Rows to skip: the previous page's `nextOffset`. */
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0).describe('nextOffset of the previous page'),
});
export type ReportReferrersQuery = z.infer<typeof ReportReferrersQuerySchema>;

/** GET /v1/reports/timeseries: zero-filled buckets. */
export const ReportTimeseriesQuerySchema = ReportRangeSchema.extend({
  /** A week bucket starts on Monday. */
  interval: z.enum(['day', 'week']).default('day'),
});
export type ReportTimeseriesQuery = z.infer<typeof ReportTimeseriesQuerySchema>;

/** POST /v1/keys: a new key for the calling program (shown once). */
export const ApiKeyCreateSchema = z.object(
  {
    kind: z
      .enum(['publishable', 'secret'], {
        error: (issue) =>
          issue.input === undefined
            ? 'required: send { "kind": "secret" } or { "kind": "publishable" }'
            : 'must be "secret" or "publishable"',
      })
      .describe('"secret" (sk_…: your server and the dashboard) or "publishable" (pk_…: the script tag)'),
  },
  { error: 'send a JSON object: { "kind": "secret" | "publishable" }' },
);
export type ApiKeyCreate = z.infer<typeof ApiKeyCreateSchema>;

/**
 * POST /v1/rewards/:id/approve|revoke|pay: an optional reason, kept with the
 * transition. Approving before the reward's hold ends needs `force` and a reason.
 */
export const RewardTransitionSchema = z
  .object({
    reason: z.string().trim().min(1).max(500).optional(),
    /** Approve before `availableAt` (the override is recorded with the reason). */
    force: z.boolean().optional(),
  })
  .refine((body) => !body.force || body.reason, { path: ['reason'], message: 'a forced approval needs a reason' })
  .optional();
export type RewardTransition = z.infer<typeof RewardTransitionSchema>;

/** POST /v1/payouts: a run for every currency or one; `dryRun` shows it without making it. */
export const PayoutCreateSchema = z
  .object({
    currency: CurrencySchema.optional(),
    dryRun: z.boolean().optional(),
  })
  .strict();
export type PayoutCreate = z.infer<typeof PayoutCreateSchema>;

/** POST /v1/payouts/:id/paid|failed: some items (all when absent), with the payment reference or the reason. */
export const PayoutItemsUpdateSchema = z
  .object({
    items: z.array(z.uuid()).min(1).max(5000).optional(),
    /** The bank, PayPal or Wise reference of the payment (or, for /failed, why it failed). */
    reference: z.string().trim().min(1).max(500).optional(),
    reason: z.string().trim().min(1).max(500).optional(),
  })
  .strict();
export type PayoutItemsUpdate = z.infer<typeof PayoutItemsUpdateSchema>;

/** GET /v1/payouts/:id/export.csv */
export const PayoutExportQuerySchema = z.object({
  format: z.enum(['paypal', 'wise', 'generic']).default('generic'),
  /** PayPal takes one currency per file. */
  currency: CurrencySchema.optional(),
});
export type PayoutExportQuery = z.infer<typeof PayoutExportQuerySchema>;

/** Portal links: an hour unless told, at most a week (a link in an email may wait a few days). */
export const PORTAL_TTL_SECONDS = { default: 3600, min: 60, max: 7 * 86_400 } as const;

/** POST /v1/participants/:externalId/portal (the body is optional). */
export const PortalTokenCreateSchema = z
  .object({
    /** How long the link works, in seconds (default 3600, 60 to 604800). */
    ttlSeconds: z.number().int().min(PORTAL_TTL_SECONDS.min).max(PORTAL_TTL_SECONDS.max).optional(),
  })
  .strict()
  .optional();
export type PortalTokenCreate = z.infer<typeof PortalTokenCreateSchema>;

/** The emails a referrer chose: each one is sent unless turned off here (false). */
export const EmailPreferencesSchema = z
  .object({
    /** Someone signed up through their link. */
    referral: z.boolean(),
    /** A reward of theirs was approved. */
    rewardApproved: z.boolean(),
    /** A payout to them was paid. */
    payoutPaid: z.boolean(),
  })
  .partial()
  .strict();
export type EmailPreferences = z.infer<typeof EmailPreferencesSchema>;

/** PATCH /v1/portal/me: the referrer's own payout details (null clears them) and email choices. */
export const PortalUpdateSchema = z
  .object({
    payout: PayoutDetailsSchema.nullable().optional(),
    emails: EmailPreferencesSchema.optional(),
  })
  .strict()
  .refine((body) => body.payout !== undefined || body.emails !== undefined, { message: 'send "payout", "emails" or both' });
export type PortalUpdate = z.infer<typeof PortalUpdateSchema>;

/**
 * POST /v1/program/rules/preview: what each rule pays for a sample signup and a sample
 * purchase, by the same rule logic as a real grant. `rules` are the ones to try (the
 * program's saved rules when absent), so a settings form can preview before saving.
 */
export const RulePreviewSchema = z.object({
  rules: z.array(RewardRuleSchema).max(LIMITS.maxRules).optional(),
  sample: z.object({
    /** The sample purchase's amount in integer minor units: 4900 is $49.00. */
    purchaseAmount: minorUnits,
    currency: CurrencySchema,
    /** The referral is the referrer's Nth (tiers and milestones); 1 unless told. */
    referralNumber: z.number().int().min(1).max(100_000).default(1),
    /** The purchase is the customer's first; true unless told. */
    firstPurchase: z.boolean().default(true),
    /** Days from the referral to the purchase (withinDays); 0 unless told. */
    daysSinceReferral: z.number().int().min(0).max(36_500).default(0),
  }),
});
export type RulePreview = z.infer<typeof RulePreviewSchema>;

/** GET /v1/rewards/totals: the rewards queue's sums per participant, for the same filter as GET /v1/rewards. */
export const RewardTotalsQuerySchema = RewardQuerySchema.pick({ status: true, participant: true });
export type RewardTotalsQuery = z.infer<typeof RewardTotalsQuerySchema>;
