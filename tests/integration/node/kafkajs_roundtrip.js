// kafkajs 2.2.4 round trip against weir-broker, without consumer groups.
//
// Usage: node kafkajs_roundtrip.js BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Public API: admin.createTopics (CreateTopics v3), producer.send (Metadata v6,
// Produce v7, RecordBatch v2, plain and gzip), admin.fetchTopicOffsets and
// fetchTopicOffsetsByTimestamp (ListOffsets v3), admin.deleteTopics (v1).
// kafkajs has no group-less consumer (kafka.consumer() requires a groupId and
// runs JoinGroup/SyncGroup), so the consume half drives the same internal
// Cluster/Broker objects the kafkajs consumer's fetch loop uses: Broker.fetch
// (Fetch v11, READ_COMMITTED, kafkajs's own RecordBatch decoder) sent to each
// partition's leader, with a 4 KiB per-partition limit, then one idle
// long-poll Fetch at the end of the log.
'use strict'

const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)

// A millisecond strictly after every record sent so far and not after any
// record sent from now on (records carry the client's Date.now()).
async function timeBoundary() {
  await new Promise(resolve => setTimeout(resolve, 5))
  const t = Date.now()
  await new Promise(resolve => setTimeout(resolve, 5))
  return t
}

async function main() {
  const kafka = new Kafka({
    clientId: 'weir-kafkajs-test',
    brokers: brokersArg.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 8, initialRetryTime: 100 },
  })

  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  })

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const produced = []
  const acks = []
  let splitTime = null
  // Several sends of a batch each, so that one Produce carries many records
  // and a partition receives batches from more than one request; every other
  // send gzip-compressed (the only codec kafkajs has built in).
  const perSend = Math.max(1, Math.ceil(count / 4))
  const codecs = [CompressionTypes.None, CompressionTypes.GZIP]
  for (let start = 0, n = 0; start < count; start += perSend, n++) {
    const messages = []
    for (let i = start; i < Math.min(count, start + perSend); i++) {
      const m = {
        key: `key-${i % 17}`,
        value: `value-${i}-${'x'.repeat(i % 40)}`,
        headers: { trace: `t-${i}`, origin: 'kafkajs' },
      }
      messages.push(m)
      produced.push({ key: m.key, value: m.value, headers: m.headers })
    }
    if (n === 2) splitTime = await timeBoundary()
    const res = await producer.send({ topic, acks: -1, compression: codecs[n % 2], messages })
    for (const r of res) acks.push({ send: n, partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset })
  }
  await producer.disconnect()

  const offsets = await admin.fetchTopicOffsets(topic)
  // ListOffsets by timestamp: the first offset of the third send per partition.
  const byTime = (await admin.fetchTopicOffsetsByTimestamp(topic, splitTime)).map(o => ({ partition: o.partition, offset: String(o.offset) }))

  // The cluster factory is a symbol-keyed own property of the Kafka object.
  const sym = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  const cluster = kafka[sym]({ allowAutoTopicCreation: false })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const meta = cluster.findTopicPartitionMetadata(topic)
  const consumed = {}
  for (const pm of meta) {
    const high = BigInt(offsets.find(o => o.partition === pm.partitionId).high)
    const broker = await cluster.findBroker({ nodeId: String(pm.leader) })
    const msgs = []
    let next = 0n
    let fetches = 0
    while (next < high) {
      if (++fetches > 1000) throw new Error(`partition ${pm.partitionId}: no progress at ${next}`)
      const res = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1,
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 1048576,
        topics: [{ topic, partitions: [{ partition: pm.partitionId, fetchOffset: next.toString(), maxBytes: 4096 }] }],
      })
      const p = res.responses[0].partitions[0]
      if (p.errorCode !== 0) throw new Error(`fetch error ${p.errorCode} on partition ${pm.partitionId}`)
      for (const m of p.messages) {
        const off = BigInt(m.offset)
        if (off < next) continue // a batch may start before the requested offset
        const headers = {}
        for (const [k, v] of Object.entries(m.headers)) headers[k] = v.toString()
        msgs.push({
          offset: Number(off),
          key: m.key && m.key.toString(),
          value: m.value && m.value.toString(),
          headers,
        })
        next = off + 1n
      }
    }
    // At the end of the log: the broker holds the Fetch for maxWaitTime and
    // answers with no records and the same high watermark.
    const t0 = Date.now()
    const idle = await broker.fetch({
      replicaId: -1,
      isolationLevel: 1,
      maxWaitTime: 300,
      minBytes: 1,
      maxBytes: 1048576,
      topics: [{ topic, partitions: [{ partition: pm.partitionId, fetchOffset: next.toString(), maxBytes: 4096 }] }],
    })
    const ip = idle.responses[0].partitions[0]
    const tail = { errorCode: ip.errorCode, records: ip.messages.length, highWatermark: ip.highWatermark, lastStableOffset: ip.lastStableOffset, elapsedMs: Date.now() - t0 }
    consumed[pm.partitionId] = { leader: pm.leader, fetches, tail, messages: msgs }
  }
  await cluster.disconnect()

  // DeleteTopics v1 to the controller, then Metadata until it is gone. The
  // admin stays connected from the start: a kafkajs admin connect()ed again
  // right after disconnect() sent Metadata on its own half-closed socket
  // (correlation id continuing the old connection's) and failed with
  // "write after end".
  await admin.deleteTopics({ topics: [topic], timeout: 10000 })
  let deleted = false
  for (let i = 0; i < 100 && !deleted; i++) {
    deleted = !(await admin.listTopics()).includes(topic)
    if (!deleted) await new Promise(resolve => setTimeout(resolve, 100))
  }
  await admin.disconnect()

  process.stdout.write(JSON.stringify({ created, acks, offsets, byTime, produced, consumed, deleted }) + '\n')
}

main().catch(err => {
  process.stderr.write(`kafkajs_roundtrip failed: ${err && err.stack}\n`)
  process.exit(1)
})
