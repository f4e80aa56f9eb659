// Shapes of the server's JSON (docs/api.md).

export type Role = "admin" | "user";
export interface User {
  id: number;
  username: string;
  email: string;
  role: Role;
  disabled: boolean;
  created_at: number;
}
export interface Session {
  token: string;
  expires_at: number;
  user: User;
}
export interface Api {
  id: number;
  name: string;
  base_url: string;
  owner_id: number;
  settings: Record<string, unknown>;
  ingest_key_prefix: string;
  has_upstream_secret: boolean;
  match_host: string;
  match_port: number;
  match_base_path: string;
  created_at: number;
  updated_at: number;
  ingest_key?: string;
}
export interface LogEvent {
  id: number;
  api_id: number;
  timestamp: number;
  method: string;
  endpoint: string;
  client_ip: string;
  status_code: number;
  latency_ms: number;
  body_size?: number;
  identity?: string;
  headers?: Record<string, string>;
  query?: string;
  agent_id?: string;
  [k: string]: unknown;
}
export interface Detector {
  id: string;
  name: string;
  stage: string;
  enabled: boolean;
  severity: Severity;
  config: Record<string, unknown>;
  updated_at: number;
  implemented?: boolean;
  unavailable?: string | null; // why an implemented detector cannot run here (e.g. no GeoIP database)
}
export interface ListEntry {
  id: number;
  kind: "ip" | "cidr" | "identity";
  value: string;
  reason: string;
  api_id: number | null;
  expires_at: number | null;
  created_at?: number;
  created_by?: string | number;
}
export interface Agent {
  agent_id: string;
  hostname: string;
  version: string;
  enrolled_at: number;
  last_seen: number;
  revoked: boolean;
  counters: Record<string, number>;
  rates?: { ip: string; rps: number }[];
}
export interface AuditEntry {
  id: number;
  ts_ms: number;
  user_id: number;
  username: string;
  action: string;
  target: string;
  client_ip: string;
  details: unknown;
}
export const SEVERITIES = ["info", "low", "medium", "high", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];
export function severityRank(s: string): number {
  const i = SEVERITIES.indexOf(s as Severity);
  return i < 0 ? 0 : i;
}
export interface Finding {
  id: number;
  api_id: number;
  event_id: number;
  timestamp: number;
  detector: string;
  severity: Severity;
  score: number;
  actor: string;
  endpoint_template: string;
  method: string;
  client_ip: string;
  identity: string;
  message: string;
  evidence: unknown;
  created_at: number;
}
export interface Alert {
  id: number;
  fingerprint: string;
  api_id: number;
  api_name: string;
  detector: string;
  severity: Severity;
  status: "open" | "acknowledged" | "resolved";
  actor: string;
  endpoint_template: string;
  count: number;
  first_seen: number;
  last_seen: number;
  message: string;
  evidence: unknown;
  muted: boolean;
  muted_until: number | null;
  acknowledged_by: string | null;
  acknowledged_at: number | null;
  ack_comment: string | null;
  resolved_at: number | null;
  resolved_by: string | null;
  findings?: Finding[];
  events?: LogEvent[];
}
export interface AlertSummary {
  open_by_severity: Record<Severity, number>;
  open: number;
  acknowledged: number;
}
export interface MetricsTick {
  type: "metrics";
  ts: number;
  requests: number;
  errors: number;
  error_rate: number;
  latency_ms: { p50: number; p95: number; p99: number };
  top_ips: { ip: string; count: number }[];
  top_endpoints: { endpoint: string; count: number }[];
  alerts_open_by_severity: Partial<Record<Severity, number>>;
}
export interface StreamEvent {
  id: number;
  api_id: number;
  timestamp: number;
  method: string;
  path: string;
  endpoint_template: string;
  status_code: number;
  latency_ms: number;
  client_ip: string;
  identity: string;
  user_agent: string;
}
