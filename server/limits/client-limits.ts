/**
 * The limits a hub puts on its clients: connections (in total, per token
 * subject, new ones per remote address), per-connection quotas (produce
 * rate, subscriptions, requests in flight, idle time) and the HTTP produce
 * rate per subject. The values are the `limits.*` rows of the settings table.
 */
import { sectionDefaults, type SettingsSection } from '../settings.ts';

export type ClientLimits = SettingsSection<'limits'>;

export const DEFAULT_CLIENT_LIMITS: Readonly<ClientLimits> = Object.freeze(sectionDefaults('limits'));
