// @platformatic/kafka 1.35.0 idempotent producers against weir-broker.
//
// Usage: node platformatic_idempotent.mjs BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Two producers with idempotent: true write COUNT records each, concurrently,
// round-robin over the partitions (explicit partition), in sends of ten. Each
// sends InitProducerId v4 with producer id 0 and epoch 0 before its first
// send (that is what this client asks for a fresh producer), then Produce v8
// with acks=-1 and its producer id, epoch and per-partition sequences. Values
// are "<producer>-<i>"; the test reads the partitions back itself.
import { Admin, Consumer, Producer } from '@platformatic/kafka'

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)
const common = {
  clientId: 'weir-platformatic-idempotent',
  bootstrapBrokers: brokersArg.split(','),
  connectTimeout: 5000,
  timeout: 15000,
  retries: 8,
  retryDelay: 100
}

async function produceAll (producer, name) {
  const acks = []
  for (let start = 0; start < count; start += 10) {
    const messages = []
    for (let i = start; i < Math.min(count, start + 10); i++)
      messages.push({ topic, partition: i % partitions, value: Buffer.from(`${name}-${i}`) })
    const res = await producer.send({ messages, acks: -1 })
    for (const o of res.offsets ?? []) acks.push({ partition: o.partition, offset: String(o.offset) })
  }
  return acks
}

async function main () {
  const admin = new Admin(common)
  await admin.createTopics({ topics: [topic], partitions, replicas: 3 })
  for (let i = 0; ; i++) {
    const meta = await admin.metadata({ topics: [topic], forceUpdate: true })
    const t = meta.topics.get(topic)
    if (t && t.partitionsCount === partitions && t.partitions.every(p => p.leader >= 0)) break
    if (i > 100) throw new Error('topic has no leaders')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  await admin.close()

  const a = new Producer({ ...common, idempotent: true, autocreateTopics: false })
  const b = new Producer({ ...common, idempotent: true, autocreateTopics: false })
  const [acksA, acksB] = await Promise.all([produceAll(a, 'a'), produceAll(b, 'b')])
  const producers = { a: String(a.producerId), b: String(b.producerId) }
  await a.close()
  await b.close()

  const consumer = new Consumer({ ...common, groupId: 'unused-no-group-is-joined' })
  const high = (await consumer.listOffsets({ topics: [topic] })).get(topic).map(v => String(v))
  await consumer.close()
  process.stdout.write(JSON.stringify({ producers, acks: { a: acksA, b: acksB }, high }) + '\n')
}

main().catch(e => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
