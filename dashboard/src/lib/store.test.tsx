import { describe, expect, it } from "vitest";
import { act, render, screen } from "@testing-library/react";
import { LiveStore, useLive } from "./store";

// Live data must re-render only the components that read it, not the page around them.
describe("LiveStore", () => {
  it("re-renders subscribers only", () => {
    const store = new LiveStore<number[]>([]);
    const renders = { page: 0, chart: 0 };
    function Chart() {
      renders.chart++;
      const v = useLive(store);
      return <span data-testid="n">{v.length}</span>;
    }
    function PageShell() {
      renders.page++;
      return (
        <div>
          <h1>Overview</h1>
          <Chart />
        </div>
      );
    }
    render(<PageShell />);
    const before = { ...renders };
    for (let i = 0; i < 10; i++) act(() => store.update((p) => [...p, i]));
    expect(screen.getByTestId("n").textContent).toBe("10");
    expect(renders.page).toBe(before.page);
    expect(renders.chart).toBe(before.chart + 10);
  });
});
