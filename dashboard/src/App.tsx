import { Navigate, Route, Routes, useLocation } from "react-router-dom";
import { AuthProvider, useAuth } from "./lib/auth";
import { Layout } from "./components/Layout";
import { NotificationProvider } from "./components/Notifications";
import { LoginPage, RegisterPage } from "./pages/Login";
import { OverviewPage } from "./pages/Overview";
import { LivePage } from "./pages/Live";
import { AlertsPage } from "./pages/Alerts";
import { AlertDetailPage } from "./pages/AlertDetail";
import { LogsPage } from "./pages/Logs";
import { ApisPage } from "./pages/Apis";
import { DetectorsPage } from "./pages/Detectors";
import { ListsPage } from "./pages/Lists";
import { AgentsPage } from "./pages/Agents";
import { AuditPage } from "./pages/Audit";
import { NotificationsPage } from "./pages/Notifications";
import { UsersPage } from "./pages/Users";
import { Page } from "./components/States";
import type { ReactNode } from "react";

function RequireAuth({ children }: { children: ReactNode }) {
  const { user } = useAuth();
  const loc = useLocation();
  if (!user) return <Navigate to="/login" replace state={{ from: loc.pathname + loc.search }} />;
  return <>{children}</>;
}

function AdminOnly({ children }: { children: ReactNode }) {
  const { isAdmin } = useAuth();
  if (!isAdmin)
    return (
      <Page title="Not allowed">
        <p className="state error" role="alert">
          This page is for administrators only.
        </p>
      </Page>
    );
  return <>{children}</>;
}

function Shell() {
  const { user } = useAuth();
  return (
    <NotificationProvider enabled={!!user}>
      <Routes>
        <Route path="/login" element={<LoginPage />} />
        <Route path="/register" element={<RegisterPage />} />
        <Route
          element={
            <RequireAuth>
              <Layout />
            </RequireAuth>
          }
        >
          <Route index element={<OverviewPage />} />
          <Route path="live" element={<LivePage />} />
          <Route path="alerts" element={<AlertsPage />} />
          <Route path="alerts/:id" element={<AlertDetailPage />} />
          <Route path="logs" element={<LogsPage />} />
          <Route path="apis" element={<ApisPage />} />
          <Route path="detectors" element={<DetectorsPage />} />
          <Route path="lists" element={<ListsPage />} />
          <Route path="notifications" element={<NotificationsPage />} />
          <Route
            path="agents"
            element={
              <AdminOnly>
                <AgentsPage />
              </AdminOnly>
            }
          />
          <Route
            path="users"
            element={
              <AdminOnly>
                <UsersPage />
              </AdminOnly>
            }
          />
          <Route
            path="audit"
            element={
              <AdminOnly>
                <AuditPage />
              </AdminOnly>
            }
          />
          <Route
            path="*"
            element={
              <Page title="Page not found">
                <p className="state empty">There is no page at this address.</p>
              </Page>
            }
          />
        </Route>
      </Routes>
    </NotificationProvider>
  );
}

export function App() {
  return (
    <AuthProvider>
      <Shell />
    </AuthProvider>
  );
}
