// kafkajs 2.2.4 idempotent producer against weir-broker.
//
// Usage: node kafkajs_idempotent.js BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// kafka.producer({ idempotent: true }) sends InitProducerId v1 (no
// transactional id) to a broker before its first send, then Produce v7 with
// acks=-1 and the producer id, epoch and per-partition sequences in every
// batch header. The topic is created here (RF 3); the test reads the records
// back itself.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)

async function main() {
  const kafka = new Kafka({
    clientId: 'weir-kafkajs-idempotent',
    brokers: brokersArg.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 8, initialRetryTime: 100 },
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 3 }],
    waitForLeaders: true,
  })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  const acks = []
  const perSend = Math.max(1, Math.ceil(count / 10))
  for (let start = 0, n = 0; start < count; start += perSend, n++) {
    const messages = []
    for (let i = start; i < Math.min(count, start + perSend); i++)
      messages.push({ partition: i % partitions, value: `${i}` })
    const res = await producer.send({ topic, acks: -1, messages })
    for (const r of res) acks.push({ send: n, partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset })
  }
  await producer.disconnect()
  const offsets = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  process.stdout.write(JSON.stringify({ acks, offsets }) + '\n')
}

main().catch(e => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
