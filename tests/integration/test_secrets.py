"""Secrets at rest: distinctive secrets planted through every door (passwords, upstream secrets,
ingest keys, callers' credentials inside events, agent and enrolment tokens, JWTs) are searched for
in every table, the raw SQLite files, stdout and LOG_FILE. None may appear in clear."""
import base64
import json
import unittest

from harness import ADMIN_PASSWORD, BACKEND, Server, event

PLANTED = {
    "password": "Plant3dPassw0rd-XYZZY",
    "wrong password tried": "Wr0ngPassw0rd-PLOVER",
    "reset password": "ResetPassw0rd-FROTZ",
    "upstream secret": "UPSTREAM-SECRET-PLUGH",
    "rotated upstream secret": "UPSTREAM-SECRET-2-YOMIN",
    "bearer token in an event": "BEARER-TOKEN-FROBOZZ",
    "cookie in an event": "SESSION-COOKIE-GRUE",
    "x-api-key in an event": "X-API-KEY-ZORKMID",
    "proxy credential in an event": "PROXY-CRED-BLORB",
    "basic password in an event": "BASIC-PASSWORD-GNUSTO",
    "bearer token in a batch": "BATCH-BEARER-REZROV",
    "bearer token over WebSocket": "WS-BEARER-IZYUK",
}


class SecretsAtRestTest(unittest.TestCase):
    def test_planted_secrets_never_in_clear(self):
        server = Server({"ACCESS_LOG": "true", "LOG_LEVEL": "debug", "SECRET_HEADERS": "X-Api-Key"})
        try:
            self.plant_and_search(server)
        finally:
            server.cleanup()

    def plant_and_search(self, s):
        s.start()
        admin = s.admin_token()
        p = PLANTED
        found_secrets = dict(p)
        found_secrets["admin password"] = ADMIN_PASSWORD
        # Accounts.
        user = s.register("planter", p["password"])
        s.post("/api/login", {"username": "planter", "password": p["wrong password tried"]})
        uid = s.me(user)["id"]
        self.assertEqual(s.put(f"/api/users/{uid}", {"password": p["reset password"]}, admin).status, 200)
        login = s.login("planter", p["reset password"])
        # APIs: upstream secrets and ingest keys (the first one rotated away).
        api = s.create_api(user, "planted", upstream_secret=p["upstream secret"])
        r = s.put(f"/api/apis/{api['id']}", {"upstream_secret": p["rotated upstream secret"], "rotate_ingest_key": True}, user)
        self.assertEqual(r.status, 200, r)
        found_secrets["first ingest key"] = api["ingest_key"]
        found_secrets["rotated ingest key"] = key = r.json()["ingest_key"]
        # Callers' credentials inside events, through every ingest path.
        basic = base64.b64encode(f"caller:{p['basic password in an event']}".encode()).decode()
        found_secrets["basic credential (base64)"] = basic
        r = s.post("/api/ingest", event(key, endpoint="/planted/single", headers={
            "Authorization": "Bearer " + p["bearer token in an event"], "Cookie": "sid=" + p["cookie in an event"],
            "X-Api-Key": p["x-api-key in an event"], "Proxy-Authorization": "Bearer " + p["proxy credential in an event"],
            "Accept": "*/*"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.post("/api/ingest", event(key, endpoint="/planted/basic", headers={"Authorization": "Basic " + basic})).status, 200)
        r = s.batch([event(endpoint="/planted/batch", headers={"authorization": "Bearer " + p["bearer token in a batch"]})],
                    headers={"X-Api-Key": key})
        self.assertEqual(r.json()["accepted"], 1, r)
        et = s.post("/api/agents", {"name": "planted-agent"}, admin).json()["enrollment_token"]
        agent = s.post("/api/agents/enroll", {"enrollment_token": et, "hostname": "planted", "version": "1"}).json()
        found_secrets["enrolment token"] = et
        found_secrets["agent token"] = agent["agent_token"]
        found_secrets["identity key"] = agent["identity_key"]
        s.post("/api/agents/heartbeat", {"counters": {"captured": 1}}, agent["agent_token"])
        ws = s.ws(headers=["Authorization: Bearer " + agent["agent_token"]])
        ws.send(json.dumps(event(agent_id=agent["agent_id"], seq=1, endpoint="/planted/ws",
                                 headers={"Authorization": "Bearer " + p["bearer token over WebSocket"]})))
        self.assertEqual(json.loads(ws.recv())["status"], "accepted")
        ws.close()
        # The query-string form of the agent token: request targets must not be logged with it.
        ws = s.ws(path="/ws/ingest?token=" + agent["agent_token"])
        ws.send(json.dumps(event(agent_id=agent["agent_id"], seq=2, endpoint="/planted/ws-query")))
        self.assertEqual(json.loads(ws.recv())["status"], "accepted")
        ws.close()
        # Tokens used on management calls (and a logout, which stores the jti).
        for tok in (user, login):
            s.get("/api/apis", tok)
        s.post("/api/logout", token=login)
        found_secrets["dashboard JWT"] = user
        found_secrets["dashboard JWT signature"] = user.split(".")[2]
        found_secrets["logged-out JWT"] = login
        keys = s.secrets()
        found_secrets["JWT_SECRET"] = keys["JWT_SECRET"]
        found_secrets["ENCRYPTION_KEY"] = keys["ENCRYPTION_KEY"]
        if BACKEND == "mysql":
            found_secrets["DB_PASSWORD"] = s.env["DB_PASSWORD"]

        # The events are stored (the search below looks at real data).
        self.assertEqual(len(s.all_logs(admin, endpoint="/planted/*")), 5)

        places = {"tables": s.db_dump()}
        if BACKEND == "sqlite":
            places["SQLite files while running"] = s.db_files_bytes()
        self.assertEqual(s.stop(), 0)
        if BACKEND == "sqlite":
            places["SQLite files after shutdown"] = s.db_files_bytes()
        places["stdout"] = s.stdout_text()
        places["LOG_FILE"] = s.log_files_text()
        self.assertIn("planted", places["tables"], "the dump holds the planted API")
        self.assertIn("/planted/single", places["tables"])
        self.assertTrue(places["LOG_FILE"], "LOG_FILE was not written")
        self.assertIn("/api/ingest", places["LOG_FILE"], "ACCESS_LOG=true: requests are logged (and searched)")
        problems = []
        for what, secret in found_secrets.items():
            for where, text in places.items():
                if secret in text or (what == "identity key" and secret.upper() in text):
                    problems.append(f"{what} ({secret[:12]}...) found in {where}")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    unittest.main()
