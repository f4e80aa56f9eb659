import { SEVERITIES, type Severity } from "../lib/types";

export function SeverityBadge({ severity }: { severity: string }) {
  return <span className={`sev sev-${severity}`}>{severity}</span>;
}

export function SeveritySelect({
  id,
  value,
  onChange,
  allowAny = true,
  label,
}: {
  id: string;
  value: string;
  onChange: (v: string) => void;
  allowAny?: boolean;
  label: string;
}) {
  return (
    <label htmlFor={id}>
      {label}
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {allowAny && <option value="">any</option>}
        {SEVERITIES.map((s: Severity) => (
          <option key={s} value={s}>
            {allowAny ? `${s} or above` : s}
          </option>
        ))}
      </select>
    </label>
  );
}
