// @platformatic/kafka 1.35.0 round trip against weir-broker, without groups.
//
// Usage: node platformatic_roundtrip.mjs BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Admin.createTopics (CreateTopics v7, flexible), Producer.send (Produce v8,
// RecordBatch v2 with headers; none/gzip/snappy/lz4), Consumer.listOffsets
// latest and by timestamp (ListOffsets v5), Consumer.fetch (Fetch v12,
// flexible, READ_COMMITTED, SessionId 0/Epoch 0) sent to each partition's
// leader with a 4 KiB per-partition limit, one idle long-poll Fetch at the
// end, Admin.deleteTopics (DeleteTopics v6). Consumer.fetch never joins a
// group: the groupId the constructor insists on is never sent to the broker.
import { Admin, Consumer, Producer } from '@platformatic/kafka'

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)
const common = {
  clientId: 'weir-platformatic-test',
  bootstrapBrokers: brokersArg.split(','),
  connectTimeout: 5000,
  timeout: 15000,
  retries: 8,
  retryDelay: 100
}

// A millisecond strictly after every record sent so far and not after any
// record sent from now on (records carry the client's Date.now()).
async function timeBoundary () {
  await new Promise(resolve => setTimeout(resolve, 5))
  const t = Date.now()
  await new Promise(resolve => setTimeout(resolve, 5))
  return t
}

async function main () {
  const admin = new Admin(common)
  const created = await admin.createTopics({ topics: [topic], partitions, replicas: 1 })
  // Wait until the topic has a leader for every partition.
  let meta
  for (let i = 0; ; i++) {
    meta = await admin.metadata({ topics: [topic], forceUpdate: true })
    const t = meta.topics.get(topic)
    if (t && t.partitionsCount === partitions && t.partitions.every(p => p.leader >= 0)) break
    if (i > 100) throw new Error('topic has no leaders')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  await admin.close()

  const producer = new Producer({ ...common, autocreateTopics: false })
  const produced = []
  const offsetsAcked = []
  let splitTime = null
  // One send per codec Node 20 has (zstd needs zlib.zstd*, Node >= 22.15).
  const perSend = Math.max(1, Math.ceil(count / 4))
  const codecs = ['none', 'gzip', 'snappy', 'lz4']
  for (let start = 0, n = 0; start < count; start += perSend, n++) {
    const messages = []
    for (let i = start; i < Math.min(count, start + perSend); i++) {
      const key = `key-${i % 17}`
      const value = `value-${i}-${'y'.repeat(i % 40)}`
      const headers = { trace: `t-${i}`, origin: 'platformatic' }
      messages.push({
        topic,
        key: Buffer.from(key),
        value: Buffer.from(value),
        headers: new Map(Object.entries(headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]))
      })
      produced.push({ key, value, headers })
    }
    if (n === 2) splitTime = await timeBoundary()
    const res = await producer.send({ messages, acks: -1, compression: codecs[n % codecs.length] })
    for (const o of res.offsets ?? []) offsetsAcked.push({ send: n, partition: o.partition, offset: String(o.offset) })
  }
  await producer.close()

  const consumer = new Consumer({ ...common, groupId: 'unused-no-group-is-joined' })
  const listed = await consumer.listOffsets({ topics: [topic] })
  const high = listed.get(topic).map(v => BigInt(v))
  // ListOffsets by timestamp: the first offset of the third send per partition.
  const byTime = (await consumer.listOffsets({ topics: [topic], timestamp: BigInt(splitTime) })).get(topic)
    .map((offset, partition) => ({ partition, offset: String(offset) }))
  meta = await consumer.metadata({ topics: [topic], forceUpdate: true })
  const consumed = {}
  const tmeta = meta.topics.get(topic)
  for (let p = 0; p < tmeta.partitionsCount; p++) {
    const leader = tmeta.partitions[p].leader
    const msgs = []
    let next = 0n
    let fetches = 0
    const codecBits = new Set()
    while (next < high[p]) {
      if (++fetches > 1000) throw new Error(`partition ${p}: no progress at ${next}`)
      const res = await consumer.fetch({
        node: leader,
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 1048576,
        topics: [{
          topicId: topic, // Fetch v12 carries the topic name in this field
          partitions: [{ partition: p, currentLeaderEpoch: -1, fetchOffset: next, lastFetchedEpoch: -1, partitionMaxBytes: 4096 }]
        }]
      })
      const part = res.responses[0].partitions[0]
      if (part.errorCode !== 0) throw new Error(`fetch error ${part.errorCode} on partition ${p}`)
      for (const batch of part.records ?? []) {
        codecBits.add(batch.attributes & 7)
        for (const r of batch.records) {
          const off = batch.firstOffset + BigInt(r.offsetDelta)
          if (off < next) continue
          const headers = {}
          for (const [k, v] of r.headers) headers[k.toString()] = v && v.toString()
          msgs.push({ offset: Number(off), key: r.key && r.key.toString(), value: r.value && r.value.toString(), headers })
          next = off + 1n
        }
      }
    }
    // At the end of the log: the broker holds the Fetch for maxWaitTime and
    // answers with no records and the same high watermark.
    const t0 = Date.now()
    const idle = await consumer.fetch({
      node: leader,
      maxWaitTime: 300,
      minBytes: 1,
      maxBytes: 1048576,
      topics: [{ topicId: topic, partitions: [{ partition: p, currentLeaderEpoch: -1, fetchOffset: next, lastFetchedEpoch: -1, partitionMaxBytes: 4096 }] }]
    })
    const ip = idle.responses[0].partitions[0]
    const tail = {
      errorCode: ip.errorCode,
      records: (ip.records ?? []).reduce((n, b) => n + b.records.length, 0),
      highWatermark: String(ip.highWatermark),
      lastStableOffset: String(ip.lastStableOffset),
      elapsedMs: Date.now() - t0
    }
    consumed[p] = { leader, fetches, tail, codecs: [...codecBits].sort(), messages: msgs }
  }
  await consumer.close()

  // DeleteTopics v6 (flexible), then Metadata until it is gone.
  const admin2 = new Admin(common)
  await admin2.deleteTopics({ topics: [topic] })
  let deleted = false
  for (let i = 0; i < 100 && !deleted; i++) {
    deleted = !(await admin2.listTopics()).includes(topic)
    if (!deleted) await new Promise(resolve => setTimeout(resolve, 100))
  }
  await admin2.close()

  process.stdout.write(JSON.stringify({
    created: created.map(t => ({ name: t.name, partitions: t.partitions })),
    acks: offsetsAcked,
    offsets: high.map((h, partition) => ({ partition, high: String(h) })),
    byTime,
    produced,
    consumed,
    deleted
  }) + '\n')
}

main().catch(err => {
  process.stderr.write(`platformatic_roundtrip failed: ${err && err.stack}\n${err && err.errors ? JSON.stringify(err.errors.map(e => String(e))) : ''}\n`)
  process.exit(1)
})
