import { useFetch } from "../lib/useFetch";
import type { Api } from "../lib/types";

// The APIs the user may see (own; all for admins), as a filter.
export function useApis() {
  const r = useFetch<{ apis: Api[] }>("/api/apis");
  return { apis: r.data?.apis ?? [], error: r.error, loading: r.loading, reload: r.reload };
}

export function ApiSelect({ id, value, onChange, apis, label = "API" }: { id: string; value: string; onChange: (v: string) => void; apis: Api[]; label?: string }) {
  return (
    <label htmlFor={id}>
      {label}
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">all APIs</option>
        {apis.map((a) => (
          <option key={a.id} value={a.id}>
            {a.name}
          </option>
        ))}
      </select>
    </label>
  );
}

export function apiName(apis: Api[], id: number): string {
  if (!id) return "unassigned";
  return apis.find((a) => a.id === id)?.name ?? `#${id}`;
}
