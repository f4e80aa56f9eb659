// The product description's instrumentation snippets, filled in with this server's ingest URL
// and the API's ingest key. They run unchanged (the end-to-end test runs the Node.js one).

export interface Snippet {
  id: "node" | "python" | "curl";
  label: string;
  language: string;
  code: string;
}

// A value inside a single-quoted JavaScript/Python string.
function q(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
}

export function ingestUrl(origin: string): string {
  return origin.replace(/\/+$/, "") + "/api/ingest";
}

export function snippets(origin: string, apiKey: string): Snippet[] {
  const url = ingestUrl(origin);
  const node = `const express = require('express');
const axios = require('axios');

const app = express();

const boingMiddleware = (req, res, next) => {
  const start = Date.now();
  res.on('finish', () => {
    axios.post('${q(url)}', {
      api_key: '${q(apiKey)}',
      timestamp: Date.now() / 1000,
      method: req.method,
      endpoint: req.path,
      client_ip: req.ip,
      headers: req.headers,
      status_code: res.statusCode,
      latency_ms: Date.now() - start,
      body_size: req.socket.bytesRead
    }).catch(() => {});
  });
  next();
};

app.use(boingMiddleware);
`;
  const python = `import requests
import time

BOING_URL = "${url.replace(/"/g, '\\"')}"
BOING_API_KEY = "${apiKey.replace(/"/g, '\\"')}"

def boing_middleware(request, response):
    try:
        requests.post(BOING_URL, json={
            "api_key": BOING_API_KEY,
            "timestamp": time.time(),
            "method": request.method,
            "endpoint": request.path,
            "client_ip": request.remote_addr,
            "headers": dict(request.headers),
            "status_code": response.status_code,
            "latency_ms": response.elapsed.total_seconds() * 1000,
            "body_size": len(request.data)
        }, timeout=1)
    except:
        pass  # Don't break app if Boing is down
`;
  const shellKey = apiKey.replace(/'/g, "'\\''");
  const curl = `curl -s '${url.replace(/'/g, "'\\''")}' -H 'Content-Type: application/json' \\
  -d '{"api_key":"${shellKey.replace(/"/g, '\\"')}","timestamp":'"$(date +%s)"',"method":"GET","endpoint":"/hello","client_ip":"203.0.113.7","status_code":200,"latency_ms":12}'
`;
  return [
    { id: "node", label: "Node.js (Express)", language: "javascript", code: node },
    { id: "python", label: "Python (Flask/FastAPI)", language: "python", code: python },
    { id: "curl", label: "curl", language: "shell", code: curl },
  ];
}
