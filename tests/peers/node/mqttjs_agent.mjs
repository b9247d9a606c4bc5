// MQTT.js driven by the Python tests: one JSON command a line on stdin, one JSON event a line on stdout. One
// process serves any number of clients (starting Node.js and MQTT.js takes about half a second): each command
// names its client with "agent" (a number the tests choose), and every event about a client carries it.
//
// Commands (each may carry an "id", echoed by its answer):
//   {"op": "connect", "url": "mqtt://127.0.0.1:1883", "options": {...MQTT.js connect options...}}
//        → {"event": "connack", "connack": {...}} or {"event": "error", "message": ...}
//   {"op": "subscribe", "topic": "a/#" | ["a", "b"], "options": {"qos": 1, "nl": true, "properties": {...}}}
//        → {"event": "suback", "granted": [{"topic", "qos"}], "error": null}
//   {"op": "unsubscribe", "topic": ..., "options": {...}}  → {"event": "unsuback", "error": null}
//   {"op": "publish", "topic": ..., "payload": "text" | "payload_b64": "...", "options": {"qos", "retain",
//        "properties": {...}}}  → {"event": "published", "error": null, "packet": {...}}
//   {"op": "end", "force": false, "options": {"reasonCode": 4, "properties": {...}}}  → {"event": "ended"}
//   {"op": "exit"}: drop the client's connection at once (no DISCONNECT: the broker sees a lost connection)
//        → {"event": "gone"}
//   {"op": "quit"}: stop the process.
// The process says {"event": "ready"} (no agent) once it reads commands.
// Events the client produces by itself: "message" (topic, payload_b64, qos, retain, dup, properties),
// "packetreceive"/"packetsend" (cmd, topic, properties: to see topic aliases on the wire), "disconnect" (the
// broker's DISCONNECT), "close", "offline", "error".
// Binary property values (correlationData, authenticationData) travel as {"b64": "..."} both ways.
import mqtt from 'mqtt'
import readline from 'node:readline'

const clients = new Map()

function emit (event) {
  process.stdout.write(JSON.stringify(event, (key, value) => {
    if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
      return { b64: Buffer.from(value.data).toString('base64') }
    }
    return value
  }) + '\n')
}

function revive (value) {
  if (Array.isArray(value)) return value.map(revive)
  if (value && typeof value === 'object') {
    if (typeof value.b64 === 'string' && Object.keys(value).length === 1) return Buffer.from(value.b64, 'base64')
    const out = {}
    for (const [k, v] of Object.entries(value)) out[k] = revive(v)
    return out
  }
  return value
}

function brief (packet) {
  return { cmd: packet.cmd, topic: packet.topic, qos: packet.qos, messageId: packet.messageId, properties: packet.properties, reasonCode: packet.reasonCode, returnCode: packet.returnCode }
}

function connect (cmd) {
  const agent = cmd.agent
  const options = revive(cmd.options || {})
  if (options.will && typeof options.will.payload === 'string') options.will.payload = Buffer.from(options.will.payload)
  const client = mqtt.connect(cmd.url, { reconnectPeriod: 0, connectTimeout: 10000, ...options })
  clients.set(agent, client)
  const say = (event) => emit({ agent, ...event })
  let answered = false
  client.on('connect', (connack) => {
    if (!answered) { answered = true; say({ event: 'connack', id: cmd.id, connack: brief(connack), sessionPresent: connack.sessionPresent }) }
  })
  client.on('error', (err) => {
    if (!answered) { answered = true; say({ event: 'connack', id: cmd.id, error: err.message, code: err.code }) }
    say({ event: 'error', message: err.message, code: err.code })
  })
  client.on('message', (topic, payload, packet) => {
    say({ event: 'message', topic, payload_b64: payload.toString('base64'), qos: packet.qos, retain: packet.retain, dup: packet.dup, properties: packet.properties || {} })
  })
  client.on('packetreceive', (packet) => say({ event: 'packetreceive', ...brief(packet) }))
  client.on('packetsend', (packet) => say({ event: 'packetsend', ...brief(packet) }))
  client.on('disconnect', (packet) => say({ event: 'disconnect', ...brief(packet) }))
  client.on('close', () => say({ event: 'close' }))
  client.on('offline', () => say({ event: 'offline' }))
}

function handle (cmd) {
  const id = cmd.id
  const agent = cmd.agent
  const client = clients.get(agent)
  const emit_ = (event) => emit({ agent, id, ...event })
  switch (cmd.op) {
    case 'connect':
      connect(cmd)
      break
    case 'subscribe':
      client.subscribe(cmd.topic, revive(cmd.options || { qos: 0 }), (err, granted) => {
        emit_({ event: 'suback', error: err ? err.message : null, granted: granted || [] })
      })
      break
    case 'unsubscribe':
      client.unsubscribe(cmd.topic, revive(cmd.options || {}), (err) => {
        emit_({ event: 'unsuback', error: err ? err.message : null })
      })
      break
    case 'publish': {
      const payload = cmd.payload_b64 !== undefined ? Buffer.from(cmd.payload_b64, 'base64') : Buffer.from(cmd.payload || '')
      client.publish(cmd.topic, payload, revive(cmd.options || {}), (err, packet) => {
        emit_({ event: 'published', error: err ? err.message : null, packet: packet ? brief(packet) : null })
      })
      break
    }
    case 'end':
      client.end(Boolean(cmd.force), revive(cmd.options || {}), () => emit_({ event: 'ended' }))
      break
    case 'exit':
      // As if the process had died: the socket is closed, no DISCONNECT is sent, nothing is retried.
      if (client) {
        clients.delete(agent)
        client.options.reconnectPeriod = 0
        if (client.stream) client.stream.destroy()
        client.end(true)
      }
      emit_({ event: 'gone' })
      break
    case 'quit':
      process.exit(0)
      break
    default:
      emit_({ event: 'error', message: `unknown op ${cmd.op}` })
  }
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (!line.trim()) return
  try {
    handle(JSON.parse(line))
  } catch (err) {
    let agent
    try { agent = JSON.parse(line).agent } catch (_) {}
    emit({ agent, event: 'error', message: String(err && err.stack ? err.stack : err) })
  }
})
lines.on('close', () => process.exit(0))
emit({ event: 'ready' })
