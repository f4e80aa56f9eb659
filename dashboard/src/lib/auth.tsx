// The logged-in session: token and user, kept in localStorage so a reload stays logged in.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, setToken, setUnauthorizedHandler } from "./api";
import type { Session, User } from "./types";

const KEY = "boing.session";

interface AuthValue {
  user: User | null;
  isAdmin: boolean;
  login: (username: string, password: string) => Promise<void>;
  register: (username: string, password: string, email: string) => Promise<void>;
  logout: () => Promise<void>;
  expired: boolean;
}

const AuthContext = createContext<AuthValue | null>(null);

function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (!s.token || !s.user || (s.expires_at && s.expires_at * 1000 < Date.now())) return null;
    return s;
  } catch {
    return null;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => {
    const s = loadSession();
    setToken(s ? s.token : null);
    return s;
  });
  const [expired, setExpired] = useState(false);

  const apply = useCallback((s: Session | null) => {
    setToken(s ? s.token : null);
    if (s) localStorage.setItem(KEY, JSON.stringify(s));
    else localStorage.removeItem(KEY);
    setSession(s);
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setExpired(true);
      apply(null);
    });
    return () => setUnauthorizedHandler(null);
  }, [apply]);

  const value = useMemo<AuthValue>(
    () => ({
      user: session?.user ?? null,
      isAdmin: session?.user.role === "admin",
      expired,
      login: async (username, password) => {
        const s = await api.post<Session>("/api/login", { username, password });
        setExpired(false);
        apply(s);
      },
      register: async (username, password, email) => {
        const body: Record<string, string> = { username, password };
        if (email) body.email = email;
        const s = await api.post<Session>("/api/register", body);
        setExpired(false);
        apply(s);
      },
      logout: async () => {
        try {
          await api.post("/api/logout");
        } catch {
          /* the token is dropped either way */
        }
        apply(null);
      },
    }),
    [session, expired, apply],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error("useAuth outside AuthProvider");
  return v;
}
