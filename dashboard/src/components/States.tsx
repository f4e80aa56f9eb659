import type { ReactNode } from "react";
import type { ApiError } from "../lib/api";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state empty">{children}</p>;
}

// An error in plain words; a 404 from an endpoint means the feature is not on this server.
export function ErrorBox({ error, what, onRetry }: { error: ApiError | Error | string; what?: string; onRetry?: () => void }) {
  const e = error as ApiError;
  let text = typeof error === "string" ? error : error.message;
  if (typeof error !== "string" && e.status === 404 && what) {
    text = `Not available from this server yet: ${what.toLowerCase()} (the endpoint answered 404).`;
  }
  return (
    <div className="state error" role="alert">
      <span>{text}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        {actions && <div className="page-actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}
