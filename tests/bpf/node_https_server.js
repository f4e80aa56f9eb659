// HTTPS server for the kernel tests: Node.js links OpenSSL statically. Args: port key cert.
const https = require('https'); const fs = require('fs');
https.createServer({key: fs.readFileSync(process.argv[3]), cert: fs.readFileSync(process.argv[4])}, (req, res) => { res.writeHead(200, {'Content-Type': 'text/plain'}); res.end('ok\n'); }).listen(+process.argv[2], '127.0.0.1');
