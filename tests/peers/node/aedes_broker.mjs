// aedes as a test broker: MQTT over TCP and over WebSocket (path /mqtt) on loopback ports chosen by the system.
// Prints one JSON line {"tcp": PORT, "ws": PORT} once both listen; stops on SIGTERM or when stdin closes.
import net from 'node:net'
import http from 'node:http'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const aedes = await Aedes.createBroker()
const tcp = net.createServer(aedes.handle)
const web = http.createServer()
const wss = new WebSocketServer({ server: web, path: '/mqtt' })
wss.on('connection', (socket, req) => aedes.handle(createWebSocketStream(socket), req))

const listen = (server) => new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => resolve(server.address().port))
})
const ports = { tcp: await listen(tcp), ws: await listen(web) }
process.stdout.write(JSON.stringify(ports) + '\n')

function stop () {
  tcp.close()
  web.close()
  aedes.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
