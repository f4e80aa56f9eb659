// Loads a GET endpoint into {data, error, loading}; reload() fetches again.
import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "./api";

// GET `path` (again when it changes, on reload(), and every `refreshMs` when given: summaries
// that live data outdates). A refresh keeps the previous data on screen until the answer comes.
export function useFetch<T>(path: string | null, refreshMs?: number) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState<boolean>(!!path);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    setLoading(true);
    setError(null);
    api
      .get<T>(path)
      .then((d) => live && setData(d))
      .catch((e: unknown) => live && setError(e instanceof ApiError ? e : new ApiError(0, String(e))))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    if (!path || !refreshMs) return;
    const id = setInterval(reload, refreshMs);
    return () => clearInterval(id);
  }, [path, refreshMs, reload]);
  return { data, error, loading, reload, setData };
}
