"""Alerts end to end on the real server: findings grouped into alerts, delivered by email to a real
SMTP server on loopback (aiosmtpd requiring STARTTLS and AUTH, self-signed certificate made here)
and over SMTPS (implicit TLS), to a signed webhook that fails its first attempts and to a Slack
incoming webhook (Block Kit), pushed on /ws/alerts within a second,
deduplicated (1,000 findings -> one notification), muted until the mute expires, acknowledged and
resolved with audit entries; channels CRUD with encrypted, masked configuration; /ws/stream and
/ws/metrics; a WebSocket client that never reads is dropped without slowing ingest."""
import asyncio
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

from harness import BACKEND, ServerTestCase, event, wait_for

SMTP_USER = "boing-mailer"
SMTP_PASSWORD = "smtp-pass-Xy7"
WEBHOOK_SECRET = "whsec-test-9f2c"
FAIL_FIRST = 2  # the webhook receiver answers 500 to the first attempts of every delivery



def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def self_signed_cert(directory):
    cert, key = os.path.join(directory, "smtp.crt"), os.path.join(directory, "smtp.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class SmtpServer:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS before anything and AUTH before MAIL; with
    implicit_tls, SMTPS: TLS from the first byte (no plaintext phase at all), AUTH before MAIL."""

    def __init__(self, cert, key, implicit_tls=False):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
        self.messages = []
        self.auth_ok = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                tls = server.transport.get_extra_info("ssl_object") is not None
                outer.messages.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                                       "tls": tls,
                                       "authenticated": session.authenticated,
                                       "user": session.auth_data.login.decode()
                                       if isinstance(session.auth_data, LoginPassword) else None,
                                       "data": envelope.content})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
                  and auth_data.password == SMTP_PASSWORD.encode())
            outer.auth_ok.append(ok)
            return AuthResult(success=ok, auth_data=auth_data)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.port = free_port()
        if implicit_tls:
            # aiosmtpd's auth_require_tls looks for a STARTTLS upgrade; here the whole connection
            # is TLS, so AUTH is required without it.
            with warnings.catch_warnings():  # "AUTH without TLS": the socket itself is TLS
                warnings.simplefilter("ignore")
                self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                             ssl_context=ctx, auth_required=True,
                                             auth_require_tls=False, authenticator=authenticator)
        else:
            self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                         tls_context=ctx, require_starttls=True,
                                         auth_required=True, auth_require_tls=True,
                                         authenticator=authenticator)
        self.controller.start()

    def parsed(self):
        return [(m, email.message_from_bytes(m["data"], policy=email.policy.default))
                for m in list(self.messages)]

    def stop(self):
        self.controller.stop()


class WebhookReceiver:
    """HTTP on 127.0.0.1 recording every POST; fails the first FAIL_FIRST attempts per delivery,
    and every attempt while `failing` is set."""

    def __init__(self):
        self.failing = False
        self.requests = []
        self.attempts = {}
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("X-Boing-Delivery", "") + self.path
                with outer.lock:
                    n = outer.attempts.get(key, 0) + 1
                    outer.attempts[key] = n
                    fail = self.path == "/hook" and (outer.failing or n <= FAIL_FIRST) and \
                        self.headers.get("X-Boing-Delivery", "0") != "0"
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body, "attempt": n, "t": time.time(),
                                           "status": 500 if fail else 200})
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if fail else b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def for_alert(self, alert_id, path="/hook"):
        with self.lock:
            out = []
            for r in self.requests:
                if r["path"] != path:
                    continue
                j = json.loads(r["body"])
                if j.get("alert", {}).get("id") == alert_id:
                    out.append(r)
            return out

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class AlertsTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="boing-alerts-")
        cert, key = self_signed_cert(cls.tmp)
        cls.smtp = SmtpServer(cert, key)
        cls.hook = WebhookReceiver()
        cls.server_env = {
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(cls.smtp.port), "SMTP_TLS": "starttls",
            "SMTP_USER": SMTP_USER, "SMTP_PASSWORD": SMTP_PASSWORD, "SMTP_CA_FILE": cert,
            "ALERT_EMAIL_FROM": "boing@alerts.test",
            "ALERT_EMAIL_TO": "sec@example.test,oncall@example.test",
            "WEBHOOK_URL": f"http://127.0.0.1:{cls.hook.port}/hook",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PUBLIC_URL": "https://boing.example.test/",
            "ALERT_DELIVERY_BACKOFF_MS": "100",
            "WS_SEND_QUEUE_MAX": "200",
        }
        try:
            super().setUpClass()
        except BaseException:
            cls.smtp.stop()
            cls.hook.stop()
            raise
        cls.owner = cls.server.register("alertowner")
        cls.api = cls.server.create_api(cls.owner, "alert-api")
        cls.key = cls.api["ingest_key"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.smtp.stop()
            cls.hook.stop()

    # --- helpers -------------------------------------------------------------------------------
    def sqli(self, ip, path="/search", key=None):
        r = self.server.post("/api/ingest", event(key or self.key, client_ip=ip,
                                                  endpoint=path + "?q=1%27%20OR%20%271%27%3D%271"))
        self.assertEqual(r.status, 200, r)
        return r.json()["id"]

    def alerts(self, token=None, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        r = self.server.get("/api/alerts?" + q, token or self.owner)
        self.assertEqual(r.status, 200, r)
        return r.json()["alerts"]

    def alert_for(self, ip, detector="sqli"):
        found = wait_for(lambda: self.alerts(actor=f"ip:{ip}", detector=detector))
        self.assertTrue(found, f"no alert for {ip}")
        return found[0]

    def deliveries(self, alert_id):
        r = self.server.get(f"/api/alerts/{alert_id}/deliveries", self.owner)
        self.assertEqual(r.status, 200, r)
        return {d["kind"]: d for d in r.json()["deliveries"]}

    def emails_for(self, alert_id):
        link = f"https://boing.example.test/alerts/{alert_id}"
        out = []
        for raw, msg in self.smtp.parsed():
            text = msg.get_body(("plain",))
            if text is not None and link in text.get_content():
                out.append((raw, msg))
        return out

    # --- tests ---------------------------------------------------------------------------------
    def test_email_and_signed_webhook_with_retries(self):
        self.sqli("198.51.100.10")
        a = self.alert_for("198.51.100.10")
        self.assertEqual(a["status"], "open")
        self.assertEqual(a["severity"], "high")
        self.assertEqual(a["api_name"], "alert-api")
        self.assertEqual(a["endpoint_template"], "/search")

        mails = wait_for(lambda: self.emails_for(a["id"]), timeout=20)
        self.assertEqual(len(mails), 1, self.smtp.messages)
        raw, msg = mails[0]
        self.assertTrue(raw["tls"], "the mail was sent without STARTTLS")
        self.assertTrue(raw["authenticated"])
        self.assertEqual(raw["user"], SMTP_USER)
        self.assertEqual(sorted(raw["rcpt"]), ["oncall@example.test", "sec@example.test"])
        self.assertEqual(raw["from"], "boing@alerts.test")
        self.assertIn("[high] sqli on alert-api from ip:198.51.100.10", msg["Subject"])
        self.assertIn("sec@example.test", msg["To"])
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        self.assertIn("ip:198.51.100.10", text)
        self.assertIn(f'href="https://boing.example.test/alerts/{a["id"]}"', html)
        self.assertIn("<table>", html)
        self.assertNotEqual(text, html)

        # Webhook: two failures, then success; every attempt signed over "timestamp.body".
        hits = wait_for(lambda: [h for h in self.hook.for_alert(a["id"]) if h["attempt"] == 3],
                        timeout=20)
        self.assertTrue(hits, self.hook.requests)
        tries = self.hook.for_alert(a["id"])
        self.assertEqual([h["attempt"] for h in tries], [1, 2, 3])
        for h in tries:
            ts = h["headers"]["X-Boing-Timestamp"]
            self.assertLess(abs(int(ts) - time.time()), 60)
            want = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), ts.encode() + b"." + h["body"],
                                        hashlib.sha256).hexdigest()
            self.assertEqual(h["headers"]["X-Boing-Signature"], want)
            j = json.loads(h["body"])
            self.assertEqual(j["type"], "alert")
            self.assertEqual(j["alert"]["actor"], "ip:198.51.100.10")
            self.assertEqual(j["url"], f"https://boing.example.test/alerts/{a['id']}")
        # Backoff between attempts.
        self.assertGreater(tries[1]["t"] - tries[0]["t"], 0.04)

        d = wait_for(lambda: (lambda d: d if d.get("webhook", {}).get("status") == "sent" else None)(
            self.deliveries(a["id"])))
        self.assertTrue(d)
        self.assertEqual(d["webhook"]["attempts"], 3)
        self.assertEqual(d["webhook"]["channel_name"], "webhook")
        self.assertEqual(d["email"]["status"], "sent")
        self.assertEqual(d["email"]["attempts"], 1)
        self.assertTrue(all(self.smtp.auth_ok))

    def test_ws_alert_arrives_within_one_second(self):
        ws = self.server.ws(f"/ws/alerts?token={self.owner}&api_id={self.api['id']}")
        try:
            t0 = time.time()
            self.sqli("198.51.100.11")
            ws.settimeout(5)
            while True:
                m = json.loads(ws.recv())
                if m["alert"]["actor"] == "ip:198.51.100.11":
                    break
            elapsed = time.time() - t0
            self.assertEqual(m["type"], "alert")
            self.assertEqual(m["action"], "created")
            self.assertEqual(m["alert"]["detector"], "sqli")
            self.assertLess(elapsed, 1.0)
        finally:
            ws.close()
        # The JWT is required; another user's API is refused.
        import websocket
        with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
            self.server.ws("/ws/alerts")
        self.assertEqual(cm.exception.status_code, 401)
        stranger = self.server.register("ws-stranger")
        with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
            self.server.ws(f"/ws/alerts?api_id={self.api['id']}",
                           headers=[f"Authorization: Bearer {stranger}"])
        self.assertEqual(cm.exception.status_code, 404)

    def test_thousand_findings_one_fingerprint_one_notification(self):
        ip = "198.51.100.12"
        evs = [event(None, client_ip=ip, endpoint=f"/search?q=1%27%20OR%20%27{i}%27%3D%27{i}")
               for i in range(1000)]
        for i in range(0, 1000, 250):
            r = self.server.batch(evs[i:i + 250], headers={"X-Api-Key": self.key})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["accepted"], 250, r)
        done = wait_for(lambda: [a for a in self.alerts(actor=f"ip:{ip}", detector="sqli")
                                 if a["count"] >= 1000], timeout=30)
        self.assertTrue(done, self.alerts(actor=f"ip:{ip}", detector="sqli"))
        alerts = self.alerts(actor=f"ip:{ip}", detector="sqli")
        self.assertEqual(len(alerts), 1, alerts)
        a = alerts[0]
        self.assertEqual(a["count"], 1000)
        wait_for(lambda: self.deliveries(a["id"]).get("webhook", {}).get("status") == "sent", 20)
        time.sleep(0.5)
        r = self.server.get(f"/api/alerts/{a['id']}/deliveries", self.owner).json()["deliveries"]
        self.assertEqual(sorted(d["kind"] for d in r), ["email", "webhook"])
        self.assertEqual(len(self.emails_for(a["id"])), 1)
        self.assertEqual(len({h["headers"]["X-Boing-Delivery"] for h in self.hook.for_alert(a["id"])}), 1)
        # The alert detail carries the findings and their events.
        d = self.server.get(f"/api/alerts/{a['id']}", self.owner).json()
        self.assertEqual(len(d["findings"]), 100)
        self.assertTrue(d["events"])
        self.assertEqual(d["events"][0]["client_ip"], ip)

    def test_severity_rise_is_notified_again(self):
        ip = "198.51.100.15"
        sqli = [d for d in self.server.get("/api/detectors", self.admin).json()["detectors"]
                if d["id"] == "sqli"][0]
        self.sqli(ip, "/rise")
        a = self.alert_for(ip)
        self.assertEqual(a["severity"], "high")
        self.assertTrue(wait_for(lambda: self.deliveries(a["id"]).get("webhook", {}).get("status") == "sent"))
        r = self.server.put(f"/api/detectors/{sqli['id']}", {"severity": "critical"}, self.admin)
        self.assertEqual(r.status, 200, r)
        try:
            self.sqli(ip, "/rise")
            risen = wait_for(lambda: [x for x in self.alerts(actor=f"ip:{ip}", detector="sqli")
                                      if x["severity"] == "critical"])
            self.assertTrue(risen, self.alerts(actor=f"ip:{ip}", detector="sqli"))
            self.assertEqual(risen[0]["id"], a["id"])  # the same alert, grouped
            self.assertEqual(risen[0]["count"], 2)

            def sent_hooks():
                got = [json.loads(h["body"]) for h in self.hook.for_alert(a["id"])
                       if h["attempt"] > FAIL_FIRST]
                return got if len(got) == 2 else None
            hooks = wait_for(sent_hooks, 20)
            self.assertTrue(hooks, self.hook.for_alert(a["id"]))
            self.assertEqual(sorted(h["alert"]["severity"] for h in hooks), ["critical", "high"])
            self.assertTrue(wait_for(lambda: len(self.emails_for(a["id"])) == 2, 20))
            d = self.server.get(f"/api/alerts/{a['id']}/deliveries", self.owner).json()["deliveries"]
            self.assertEqual(sorted(x["kind"] for x in d), ["email", "email", "webhook", "webhook"])
            # A third finding at the same severity notifies no one.
            self.sqli(ip, "/rise")
            self.assertTrue(wait_for(lambda: [x for x in self.alerts(actor=f"ip:{ip}", detector="sqli")
                                              if x["count"] == 3]))
            time.sleep(0.5)
            self.assertEqual(len(self.server.get(f"/api/alerts/{a['id']}/deliveries",
                                                 self.owner).json()["deliveries"]), 4)
            m = self.server.get("/metrics").body
            self.assertRegex(m, r"(?m)^boing_alerts_escalated_total [1-9]")
        finally:
            self.server.put(f"/api/detectors/{sqli['id']}", {"severity": sqli["severity"]}, self.admin)

    def test_matcher_mute_suppresses_until_it_expires(self):
        ip = "198.51.100.13"
        r = self.server.post("/api/mutes", {"actor": f"ip:{ip}", "api_id": self.api["id"],
                                            "duration_seconds": 3, "comment": "pentest"}, self.owner)
        self.assertEqual(r.status, 201, r)
        mute = r.json()
        self.assertEqual(mute["actor"], f"ip:{ip}")
        self.assertIn(mute["id"], [m["id"] for m in self.server.get("/api/mutes", self.owner).json()["mutes"]])
        t_mute = time.time()
        self.sqli(ip, "/a")
        a = self.alert_for(ip)
        d = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(self.deliveries(a["id"])))
        self.assertEqual({k: v["status"] for k, v in d.items()}, {"email": "muted", "webhook": "muted"})
        time.sleep(max(0, 3.2 - (time.time() - t_mute)))
        self.assertEqual(self.hook.for_alert(a["id"]), [])
        self.assertEqual(self.emails_for(a["id"]), [])
        # Expired: a new alert of the actor (another endpoint) is notified again.
        self.assertNotIn(mute["id"], [m["id"] for m in self.server.get("/api/mutes", self.owner).json()["mutes"]])
        self.sqli(ip, "/b")
        b = wait_for(lambda: [x for x in self.alerts(actor=f"ip:{ip}") if x["endpoint_template"] == "/b"])
        self.assertTrue(b)
        self.assertTrue(wait_for(lambda: self.emails_for(b[0]["id"]), timeout=20))
        # Validation and permissions.
        self.assertError(self.server.post("/api/mutes", {"duration_seconds": 5}, self.admin), 400)
        self.assertError(self.server.post("/api/mutes", {"actor": "ip:1.2.3.4"}, self.admin), 400)
        self.assertError(self.server.post("/api/mutes", {"actor": "ip:1.2.3.4", "duration_seconds": 5},
                                          self.owner), 400, "api_id")
        other = self.server.register("mute-other")
        self.assertEqual(self.server.delete(f"/api/mutes/{mute['id']}", other).status, 403)
        self.assertEqual(self.server.delete(f"/api/mutes/{mute['id']}", self.owner).status, 204)

    def test_ack_resolve_mute_alert_roles_and_audit(self):
        self.sqli("198.51.100.14")
        a = self.alert_for("198.51.100.14")
        stranger = self.server.register("alert-stranger")
        self.assertEqual(self.server.get(f"/api/alerts/{a['id']}", stranger).status, 404)
        self.assertEqual(self.server.post(f"/api/alerts/{a['id']}/ack", {}, stranger).status, 404)
        self.assertEqual(self.alerts(stranger), [])
        self.assertTrue([x for x in self.alerts(self.admin) if x["id"] == a["id"]])
        summary = self.server.get("/api/alerts/summary", self.owner).json()
        self.assertGreaterEqual(summary["open_by_severity"]["high"], 1)

        r = self.server.post(f"/api/alerts/{a['id']}/ack", {"comment": "on it"}, self.owner)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "acknowledged")
        self.assertEqual(r.json()["acknowledged_by"], "alertowner")
        self.assertEqual(r.json()["ack_comment"], "on it")
        r = self.server.put(f"/api/alerts/{a['id']}/mute", {"duration_seconds": 600}, self.owner)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["muted"])
        self.assertGreater(r.json()["muted_until"], time.time() + 500)
        self.assertError(self.server.put(f"/api/alerts/{a['id']}/mute", {"until": 5}, self.owner), 400, "until")
        r = self.server.post(f"/api/alerts/{a['id']}/resolve", {}, self.owner)
        self.assertEqual(r.json()["status"], "resolved")
        self.assertEqual(r.json()["resolved_by"], "alertowner")
        self.assertEqual(self.server.post(f"/api/alerts/{a['id']}/ack", {}, self.owner).status, 409)
        self.assertTrue([x for x in self.alerts(status="resolved") if x["id"] == a["id"]])
        self.assertFalse([x for x in self.alerts(status="open") if x["id"] == a["id"]])
        audit = self.server.get("/api/audit?limit=100", self.admin).json()["entries"]
        mine = [e["action"] for e in audit if e["target"] == f"alert:{a['id']}"]
        self.assertEqual(sorted(mine), ["alert.ack", "alert.mute", "alert.resolve"])
        self.assertError(self.server.get("/api/alerts?severity=urgent", self.owner), 400, "severity")
        self.assertError(self.server.get("/api/alerts?status=gone", self.owner), 400, "status")
        self.assertEqual(self.server.get("/api/alerts/999999", self.owner).status, 404)

    def test_alert_pagination(self):
        for i in range(3):
            self.sqli(f"198.51.100.{30 + i}")
        for i in range(3):
            self.alert_for(f"198.51.100.{30 + i}")
        seen, cursor = [], None
        while True:
            r = self.server.get("/api/alerts?limit=2" + (f"&cursor={cursor}" if cursor else ""), self.owner)
            self.assertEqual(r.status, 200, r)
            j = r.json()
            seen += [a["id"] for a in j["alerts"]]
            cursor = j["next_cursor"]
            if not cursor:
                break
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(seen), sorted(a["id"] for a in self.alerts(limit=1000)))

    def test_channels_are_admin_only_encrypted_and_masked(self):
        url = f"http://127.0.0.1:{self.hook.port}/extra/T0KEN-PART"
        body = {"name": "extra", "kind": "webhook", "min_severity": "critical",
                "api_ids": [self.api["id"]], "config": {"url": url, "secret": "chan-secret-77"}}
        self.assertEqual(self.server.post("/api/channels", body, self.owner).status, 403)
        r = self.server.post("/api/channels", body, self.admin)
        self.assertEqual(r.status, 201, r)
        ch = r.json()
        self.assertEqual(ch["config"], {"url": f"http://127.0.0.1/****", "has_secret": True})
        self.assertEqual(ch["min_severity"], "critical")
        self.assertEqual(self.server.post("/api/channels", body, self.admin).status, 409)
        listed = self.server.get("/api/channels", self.admin).json()["channels"]
        self.assertEqual(sorted(c["name"] for c in listed), ["email", "extra", "webhook"])
        self.assertNotIn("T0KEN", json.dumps(listed))
        self.assertNotIn("chan-secret-77", json.dumps(listed))
        self.assertNotIn(WEBHOOK_SECRET, json.dumps(listed))
        dump = self.server.db_dump()
        self.assertNotIn("T0KEN-PART", dump)
        self.assertNotIn("chan-secret-77", dump)
        self.assertError(self.server.post("/api/channels", {"name": "x", "kind": "webhook",
                                                            "config": {"url": "ftp://x"}}, self.admin), 400, "config")
        self.assertError(self.server.post("/api/channels", {"name": "x", "kind": "pager", "config": {}},
                                          self.admin), 400, "kind")
        # PUT keeps the secret when only other fields change; the test message is signed with it.
        r = self.server.put(f"/api/channels/{ch['id']}", {"enabled": True, "min_severity": "high"}, self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["config"]["has_secret"], True)
        self.assertEqual(self.server.post(f"/api/channels/{ch['id']}/test", None, self.admin).status, 202)
        got = wait_for(lambda: [h for h in self.hook.requests if h["path"] == "/extra/T0KEN-PART"])
        self.assertTrue(got)
        h = got[0]
        self.assertEqual(json.loads(h["body"])["type"], "test")
        ts = h["headers"]["X-Boing-Timestamp"]
        self.assertEqual(h["headers"]["X-Boing-Signature"], "sha256=" + hmac.new(
            b"chan-secret-77", ts.encode() + b"." + h["body"], hashlib.sha256).hexdigest())
        self.assertEqual(self.server.delete(f"/api/channels/{ch['id']}", self.admin).status, 204)
        self.assertEqual(self.server.get(f"/api/channels/{ch['id']}", self.admin).status, 404)
        audit = [e["action"] for e in self.server.get("/api/audit?limit=200", self.admin).json()["entries"]
                 if e["target"] == f"channel:{ch['id']}"]
        self.assertEqual(sorted(audit), ["channel.create", "channel.delete", "channel.test", "channel.update"])
        self.assertNotIn("chan-secret-77", self.server.log_files_text() + self.server.stdout_text())
        self.assertNotIn(SMTP_PASSWORD, self.server.log_files_text() + self.server.stdout_text())

    def test_stream_and_metrics(self):
        other_api = self.server.create_api(self.owner, "alert-api-2")
        ws = self.server.ws(f"/ws/stream?token={self.owner}&api_id={self.api['id']}")
        wm = self.server.ws(f"/ws/metrics?token={self.owner}")
        try:
            self.server.post("/api/ingest", event(other_api["ingest_key"], client_ip="198.51.100.40",
                                                  endpoint="/other"))
            eid = self.sqli("198.51.100.41", "/orders/17")
            ws.settimeout(5)
            kinds = {}
            while len(kinds) < 2:
                m = json.loads(ws.recv())
                self.assertNotEqual(m.get("event", {}).get("path"), "/other")
                if m["type"] == "event" and m["event"]["id"] == eid:
                    kinds["event"] = m["event"]
                if m["type"] == "finding" and m["finding"]["event_id"] == eid:
                    kinds["finding"] = m["finding"]
            self.assertEqual(kinds["event"]["endpoint_template"], "/orders/{id}")
            self.assertEqual(kinds["finding"]["detector"], "sqli")
            wm.settimeout(5)
            total = 0
            deadline = time.time() + 5
            while total < 2 and time.time() < deadline:
                m = json.loads(wm.recv())
                self.assertEqual(m["type"], "metrics")
                self.assertIn("p99", m["latency_ms"])
                self.assertIn("high", m["alerts_open_by_severity"])
                total += m["requests"]
                if m["requests"]:
                    self.assertTrue(m["top_ips"])
                self.server.post("/api/ingest", event(self.key, client_ip="198.51.100.42"))
            self.assertGreaterEqual(total, 2)
        finally:
            ws.close()
            wm.close()
        self.assertError(self.server.get("/api/alerts?limit=0", self.owner), 400, "limit")

    def test_client_that_never_reads_is_dropped_without_slowing_ingest(self):
        import websocket
        batch = [event(None, client_ip="198.51.100.50", endpoint=f"/items/{i}", latency_ms=3.5,
                       user_agent="x" * 200) for i in range(500)]

        def metrics():
            return dict(re.findall(r"^(\S+) (\d+)", self.server.get("/metrics").body, re.M))

        def stream_clients():
            return int(metrics().get('boing_ws_clients{topic="stream"}', -1))

        def caught_up():
            m = metrics()
            return m["boing_detection_events_total"] == m['boing_ingest_events_total{result="accepted"}']

        def sample(slow_client, batches=3):
            """Seconds to ingest `batches` and have every event through detection and the live
            stream (the stream's messages are built and queued after detection), with or without
            a client that never reads. Both kinds of sample poll the same before and after."""
            slow = None
            if slow_client:
                # A fresh client that reads nothing (its receive buffer is tiny) is subscribed when
                # the sample starts: the server builds and queues the sample's events for it until
                # its kernel buffers and queue (WS_SEND_QUEUE_MAX=200) are full, and must then
                # drop it.
                slow = websocket.WebSocket(sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
                slow.connect(f"ws://127.0.0.1:{self.server.port}/ws/stream?token={self.owner}"
                             "&kinds=events")
            try:
                self.assertTrue(wait_for(lambda: stream_clients() == int(slow_client),
                                         interval=0.005))
                t0 = time.perf_counter()
                for _ in range(batches):
                    r = self.server.batch(batch, headers={"X-Api-Key": self.key})
                    self.assertEqual(r.status, 200, r)
                self.assertTrue(wait_for(caught_up, interval=0.005))
                elapsed = time.perf_counter() - t0
                self.assertTrue(wait_for(lambda: stream_clients() == 0, timeout=10, interval=0.005),
                                "the client that never reads was not dropped")
                return elapsed
            finally:
                if slow:
                    slow.close()

        sample(False, 10)  # warm up
        dropped_before = int(metrics()["boing_ws_dropped_total"])
        # Samples with and without the client side by side, in both orders by turns (the rate
        # drifts down as the database grows), compared pair by pair; the ratio is the median of
        # the pairs' ratios. What moves single samples without being the client's — the SQLite
        # checkpointer copying 16 MiB of WAL back every ~20,000 events (some batches 4x slower),
        # delivery threads busy in bursts, load from elsewhere — falls on either side and the
        # median passes over it. (Totals of 30-batch rounds swung from 0.92 to 1.14 on identical
        # builds, with the checkpoint landing in one side's rounds or the other's; this estimate
        # stayed within 0.99-1.03 over 8 runs, and fell to 0.81 with a 30 ms stall of the ingest
        # writer injected while a stream client is connected.)
        pairs = 80
        ratios = []
        for i in range(pairs):
            if i % 2 == 0:
                w, o = sample(True), sample(False)
            else:
                o, w = sample(False), sample(True)
            ratios.append(o / w)
        ratios.sort()
        ratio = (ratios[pairs // 2 - 1] + ratios[pairs // 2]) / 2
        drops = int(metrics()["boing_ws_dropped_total"]) - dropped_before
        print(f"ingest rate with a non-reading client / without, median of {pairs} pairs: "
              f"{ratio:.3f} (quartiles {ratios[pairs // 4]:.3f}, {ratios[3 * pairs // 4]:.3f}); "
              f"{drops} clients dropped")
        self.assertEqual(drops, pairs)
        self.assertGreaterEqual(ratio, 0.95)
        self.assertAlive()


class SmtpsAndSlackTest(ServerTestCase):
    """Email over SMTPS (implicit TLS, SMTP_TLS=smtps, AUTH) and the Slack incoming webhook
    (SLACK_WEBHOOK_URL, Block Kit) to a receiver on loopback."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="boing-smtps-")
        cert, key = self_signed_cert(cls.tmp)
        cls.smtp = SmtpServer(cert, key, implicit_tls=True)
        cls.hook = WebhookReceiver()
        cls.server_env = {
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(cls.smtp.port), "SMTP_TLS": "smtps",
            "SMTP_USER": SMTP_USER, "SMTP_PASSWORD": SMTP_PASSWORD, "SMTP_CA_FILE": cert,
            "ALERT_EMAIL_FROM": "boing@alerts.test", "ALERT_EMAIL_TO": "soc@example.test",
            "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{cls.hook.port}/services/T0/B0/slack",
            "PUBLIC_URL": "https://boing.example.test",
        }
        try:
            super().setUpClass()
        except BaseException:
            cls.smtp.stop()
            cls.hook.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.smtp.stop()
            cls.hook.stop()

    def test_smtps_email_and_slack_block_kit(self):
        owner = self.server.register("slacker")
        api = self.server.create_api(owner, "slack <api> & co")
        ip = "198.51.100.80"
        # A path with mrkdwn's special characters: Slack text must carry them escaped.
        r = self.server.post("/api/ingest", event(api["ingest_key"], client_ip=ip,
                                                  endpoint="/find/a<b>&c?q=1%27%20OR%20%271%27%3D%271"))
        self.assertEqual(r.status, 200, r)
        found = wait_for(lambda: self.server.get(f"/api/alerts?actor=ip:{ip}&detector=sqli",
                                                 owner).json()["alerts"])
        self.assertTrue(found)
        a = found[0]
        link = f"https://boing.example.test/alerts/{a['id']}"

        # Email: delivered over TLS from the first byte, authenticated, both parts.
        mails = wait_for(lambda: [(m, msg) for m, msg in self.smtp.parsed()
                                  if link in msg.get_body(("plain",)).get_content()], timeout=20)
        self.assertEqual(len(mails), 1, self.smtp.messages)
        raw, msg = mails[0]
        self.assertTrue(raw["tls"])
        self.assertTrue(raw["authenticated"])
        self.assertEqual(raw["user"], SMTP_USER)
        self.assertEqual(raw["rcpt"], ["soc@example.test"])
        self.assertIn(f"[high] sqli on slack <api> & co from ip:{ip}", msg["Subject"])
        self.assertIn(f'href="{link}"', msg.get_body(("html",)).get_content())
        self.assertTrue(all(self.smtp.auth_ok))

        # Slack: one POST of a Block Kit message to the incoming-webhook URL.
        posts = wait_for(lambda: [h for h in list(self.hook.requests)
                                  if h["path"] == "/services/T0/B0/slack"
                                  and link in h["body"].decode()], timeout=20)
        self.assertEqual(len(posts), 1, self.hook.requests)
        h = posts[0]
        self.assertTrue(h["headers"]["Content-Type"].startswith("application/json"))
        j = json.loads(h["body"])
        title = "[high] sqli on slack <api> & co"
        self.assertEqual(j["text"], title)  # the notification's fallback text
        kinds = [b["type"] for b in j["blocks"]]
        self.assertEqual(kinds, ["header", "section", "section", "context"])
        self.assertEqual(j["blocks"][0]["text"], {"type": "plain_text", "text": title})
        self.assertEqual(j["blocks"][1]["text"]["type"], "mrkdwn")
        fields = {f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1]
                  for f in j["blocks"][2]["fields"]}
        self.assertEqual(fields["*Actor*"], f"ip:{ip}")
        self.assertEqual(a["endpoint_template"], "/find/a<b>&c")
        self.assertEqual(fields["*Endpoint*"], "/find/a&lt;b&gt;&amp;c")
        self.assertEqual(fields["*Count*"], "1")
        self.assertEqual(j["blocks"][3]["elements"],
                         [{"type": "mrkdwn", "text": f"<{link}|Open alert {a['id']} in Boing>"}])
        # mrkdwn text escapes &, < and > (Slack's rule); nothing unescaped reaches a mrkdwn block.
        for b in j["blocks"][1:3]:
            for t in [b.get("text", {}).get("text", "")] + [f["text"] for f in b.get("fields", [])]:
                self.assertNotRegex(t, r"<|>|&(?!amp;|lt;|gt;)")

        d = wait_for(lambda: (lambda d: d if {x["status"] for x in d} == {"sent"} and len(d) == 2
                              else None)(self.server.get(f"/api/alerts/{a['id']}/deliveries",
                                                         owner).json()["deliveries"]))
        self.assertTrue(d, self.server.get(f"/api/alerts/{a['id']}/deliveries", owner).json())
        self.assertEqual(sorted(x["kind"] for x in d), ["email", "slack"])
        self.assertTrue(all(x["attempts"] == 1 for x in d))


class PendingDeliveriesSurviveRestartTest(ServerTestCase):
    """A delivery still being retried when the server stops is retried again after it starts (and
    one older than ALERT_DELIVERY_RESUME_HOURS is marked failed instead of staying pending)."""

    @classmethod
    def setUpClass(cls):
        cls.hook = WebhookReceiver()
        cls.hook.failing = True
        cls.server_env = {"WEBHOOK_URL": f"http://127.0.0.1:{cls.hook.port}/hook",
                          "ALERT_DELIVERY_BACKOFF_MS": "500", "ALERT_DELIVERY_MAX_ATTEMPTS": "100"}
        try:
            super().setUpClass()
        except BaseException:
            cls.hook.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.hook.stop()

    def hook_outcomes(self):
        with self.hook.lock:
            return [(r["headers"].get("X-Boing-Delivery"), r["status"]) for r in self.hook.requests]

    def test_pending_delivery_resumes_after_restart(self):
        owner = self.server.register("resumer")
        key = self.server.create_api(owner, "resume-api")["ingest_key"]

        def alert_with_failing_delivery(ip):
            r = self.server.post("/api/ingest", event(key, client_ip=ip,
                                                      endpoint="/s?q=1%20union%20select%20null,null"))
            self.assertEqual(r.status, 200, r)
            a = wait_for(lambda: self.server.get(f"/api/alerts?actor=ip:{ip}", owner).json()["alerts"])
            self.assertTrue(a)

            def failed_once():
                d = self.server.get(f"/api/alerts/{a[0]['id']}/deliveries", owner).json()["deliveries"]
                return d[0] if d and d[0]["attempts"] >= 1 and d[0]["status"] == "pending" else None
            d = wait_for(failed_once)
            self.assertTrue(d, "the webhook delivery was not attempted")
            return a[0], d

        alert, before = alert_with_failing_delivery("198.51.100.70")
        self.assertEqual(self.server.stop(), 0)
        self.hook.failing = False
        self.server.start()

        def sent():
            d = self.server.get(f"/api/alerts/{alert['id']}/deliveries", owner).json()["deliveries"]
            return d[0] if d and d[0]["status"] == "sent" else None
        after = wait_for(sent)
        self.assertTrue(after, self.server.get(f"/api/alerts/{alert['id']}/deliveries", owner).json())
        self.assertEqual(after["id"], before["id"])  # the same delivery, not a new notification
        self.assertGreater(after["attempts"], before["attempts"])
        self.assertIn((str(before["id"]), 200), self.hook_outcomes())

        # Older than ALERT_DELIVERY_RESUME_HOURS=0 when the server starts: marked failed.
        self.hook.failing = True
        alert, before = alert_with_failing_delivery("198.51.100.71")
        self.assertEqual(self.server.stop(), 0)
        self.hook.failing = False
        time.sleep(1.1)  # created_at has whole seconds
        self.server.env["ALERT_DELIVERY_RESUME_HOURS"] = "0"
        self.server.start()
        d = self.server.get(f"/api/alerts/{alert['id']}/deliveries", owner).json()["deliveries"]
        self.assertEqual(d[0]["status"], "failed", d)
        self.assertIn("ALERT_DELIVERY_RESUME_HOURS", d[0]["last_error"])
        time.sleep(1)
        self.assertNotIn((str(before["id"]), 200), self.hook_outcomes())


class AutoResolveAndResponseTest(ServerTestCase):
    server_env = {"ALERT_RESOLVE_AFTER_SECONDS": "2", "ALERT_AUTOBLOCK_SECONDS": "60",
                  "ALERT_AUTOBLOCK_MIN_SEVERITY": "high"}

    def test_quiet_alert_resolves_and_actor_is_blacklisted(self):
        owner = self.server.register("resolver")
        api = self.server.create_api(owner, "auto-api")
        r = self.server.post("/api/ingest", event(api["ingest_key"], client_ip="198.51.100.60",
                                                  endpoint="/s?q=1%20union%20select%20null,null"))
        self.assertEqual(r.status, 200, r)

        def alert():
            a = self.server.get("/api/alerts?actor=ip:198.51.100.60&detector=sqli", owner).json()["alerts"]
            return a[0] if a else None
        a = wait_for(alert)
        self.assertTrue(a)
        bl = wait_for(lambda: [e for e in self.server.get("/api/blacklist", owner).json()["entries"]
                               if e["value"] == "198.51.100.60"])
        self.assertTrue(bl)
        self.assertAlmostEqual(bl[0]["expires_at"], time.time() + 60, delta=10)
        # Detection honours the new entry: the actor's next request is a blacklist finding.
        r = self.server.post("/api/ingest", event(api["ingest_key"], client_ip="198.51.100.60", endpoint="/ok"))
        eid = r.json()["id"]
        self.assertTrue(wait_for(lambda: [f for f in self.server.get(
            f"/api/findings?event_id={eid}", owner).json()["findings"] if f["detector"] == "blacklist"]))
        resolved = wait_for(lambda: (lambda x: x if x and x["status"] == "resolved" else None)(alert()),
                            timeout=15)
        self.assertTrue(resolved, alert())
        self.assertEqual(resolved["resolved_by"], "auto")
        audit = [e for e in self.server.get("/api/audit?limit=100", self.admin).json()["entries"]
                 if e["action"] == "blacklist.auto"]
        self.assertTrue(audit)


if __name__ == "__main__":
    unittest.main()
