import { useEffect, useRef } from "react";
import { NavLink, Outlet, useLocation } from "react-router-dom";
import { useAuth } from "../lib/auth";
import { timeZoneName } from "../lib/time";
import { Bell } from "./Notifications";

const NAV: { to: string; label: string; admin?: boolean }[] = [
  { to: "/", label: "Overview" },
  { to: "/live", label: "Live stream" },
  { to: "/alerts", label: "Alerts" },
  { to: "/logs", label: "Logs" },
  { to: "/apis", label: "APIs" },
  { to: "/detectors", label: "Detectors" },
  { to: "/lists", label: "Allow & block lists" },
  { to: "/notifications", label: "Notifications" },
  { to: "/agents", label: "Agents", admin: true },
  { to: "/users", label: "Users", admin: true },
  { to: "/audit", label: "Audit log", admin: true },
];

export function Layout() {
  const { user, isAdmin, logout } = useAuth();
  const loc = useLocation();
  const main = useRef<HTMLElement>(null);
  // After a navigation, move focus to the new page's heading (screen readers and keyboards).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const h = main.current?.querySelector<HTMLElement>("h1");
    h?.focus();
  }, [loc.pathname]);
  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Boing</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.admin || isAdmin).map((n) => (
              <li key={n.to}>
                <NavLink to={n.to} end={n.to === "/"}>
                  {n.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="topbar-right">
          <Bell />
          <span className="who" title={`Times are shown in ${timeZoneName()}`}>
            {user?.username} <span className="role">({user?.role})</span>
          </span>
          <button type="button" onClick={() => void logout()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" ref={main}>
        <Outlet />
      </main>
      <footer className="footer">
        {/* DB-IP City Lite (CC BY 4.0) locates client addresses for the geographic detectors; its
            licence asks for this link on pages that show or use its results. */}
        <a href="https://db-ip.com" rel="noopener noreferrer" target="_blank">
          IP Geolocation by DB-IP
        </a>
      </footer>
    </div>
  );
}
