// Accounts (admins): role, disabled flag, delete. The server refuses changes to one's own role
// and account; the page disables those controls too.
import { useState } from "react";
import { Empty, ErrorBox, Loading, Page } from "../components/States";
import { api, ApiError } from "../lib/api";
import { useAuth } from "../lib/auth";
import { formatTime } from "../lib/time";
import { useFetch } from "../lib/useFetch";
import type { User } from "../lib/types";

export function UsersPage() {
  const { user: me } = useAuth();
  const { data, error, loading, reload } = useFetch<{ users: User[] }>("/api/users");
  const [msg, setMsg] = useState<string | null>(null);
  const change = async (u: User, body: Partial<User>) => {
    setMsg(null);
    try {
      await api.put(`/api/users/${u.id}`, body);
      reload();
    } catch (e) {
      setMsg(e instanceof ApiError ? e.message : String(e));
    }
  };
  const remove = async (u: User) => {
    if (!window.confirm(`Delete the account “${u.username}”?`)) return;
    try {
      await api.del(`/api/users/${u.id}`);
      reload();
    } catch (e) {
      setMsg(e instanceof ApiError ? e.message : String(e));
    }
  };
  return (
    <Page title="Users">
      {msg && (
        <p className="state error" role="alert">
          {msg}
        </p>
      )}
      {error ? (
        <ErrorBox error={error} onRetry={reload} />
      ) : loading && !data ? (
        <Loading what="Loading users" />
      ) : !data || data.users.length === 0 ? (
        <Empty>No accounts.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="data" data-testid="users-table">
            <thead>
              <tr>
                <th scope="col">User name</th>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.users.map((u) => {
                const self = u.id === me?.id;
                return (
                  <tr key={u.id}>
                    <td>
                      {u.username}
                      {self && <span className="pill">you</span>}
                    </td>
                    <td>{u.email || "—"}</td>
                    <td>
                      <label htmlFor={`role-${u.id}`} className="sr-only">
                        Role of {u.username}
                      </label>
                      <select id={`role-${u.id}`} value={u.role} disabled={self} onChange={(e) => void change(u, { role: e.target.value as User["role"] })}>
                        <option value="user">user</option>
                        <option value="admin">admin</option>
                      </select>
                    </td>
                    <td>{u.disabled ? "disabled" : "active"}</td>
                    <td>{formatTime(u.created_at)}</td>
                    <td>
                      <button type="button" disabled={self} onClick={() => void change(u, { disabled: !u.disabled })} aria-label={`${u.disabled ? "Enable" : "Disable"} ${u.username}`}>
                        {u.disabled ? "Enable" : "Disable"}
                      </button>{" "}
                      <button type="button" className="danger" disabled={self} onClick={() => void remove(u)} aria-label={`Delete ${u.username}`}>
                        Delete
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
