import { useRef, useState, type KeyboardEvent } from "react";
import type { Snippet } from "../lib/snippets";

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// WAI-ARIA tabs: arrow keys move between tabs; each panel has a copy button.
export function SnippetTabs({ items }: { items: Snippet[] }) {
  const [active, setActive] = useState(0);
  const [copied, setCopied] = useState<string | null>(null);
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: KeyboardEvent) => {
    let next = active;
    if (e.key === "ArrowRight") next = (active + 1) % items.length;
    else if (e.key === "ArrowLeft") next = (active - 1 + items.length) % items.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = items.length - 1;
    else return;
    e.preventDefault();
    setActive(next);
    tabs.current[next]?.focus();
  };
  const s = items[active];
  return (
    <div className="snippets">
      <div role="tablist" aria-label="Instrumentation snippets" onKeyDown={onKey}>
        {items.map((it, i) => (
          <button
            key={it.id}
            ref={(el) => (tabs.current[i] = el)}
            role="tab"
            type="button"
            id={`tab-${it.id}`}
            aria-selected={i === active}
            aria-controls={`panel-${it.id}`}
            tabIndex={i === active ? 0 : -1}
            onClick={() => setActive(i)}
          >
            {it.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${s.id}`} aria-labelledby={`tab-${s.id}`}>
        <pre className="code" data-testid={`snippet-${s.id}`} tabIndex={0}>
          {s.code}
        </pre>
        <button
          type="button"
          onClick={async () => {
            const ok = await copyText(s.code);
            setCopied(ok ? `${s.label} snippet copied.` : "Copy failed: select the text and copy it by hand.");
          }}
        >
          Copy {s.label} snippet
        </button>{" "}
        <span role="status">{copied}</span>
      </div>
    </div>
  );
}
