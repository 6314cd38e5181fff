// kafkajs 2.2.4's admin client moving partitions on weir-broker.
//
// Usage: node kafkajs_reassign.js BROKERS TOPIC
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Public API only: admin.createTopics with a replica assignment, producer.send,
// admin.alterPartitionReassignments (AlterPartitionReassignments v0, sent to
// the broker Metadata names as controller), admin.listPartitionReassignments
// (ListPartitionReassignments v0) until the move is over, and
// admin.fetchTopicMetadata for the replicas and ISR afterwards. A target
// naming an unknown broker must be refused with an error the client reports.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [brokersArg, topic] = process.argv.slice(2)

async function main() {
  const kafka = new Kafka({
    clientId: 'weir-kafkajs-reassign',
    brokers: brokersArg.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 3, initialRetryTime: 100 },
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [{
      topic,
      replicaAssignment: [{ partition: 0, replicas: [1, 2] }, { partition: 1, replicas: [2, 1] }],
    }],
    waitForLeaders: true,
  })
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  for (let i = 0; i < 20; i++) {
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 50 }, (_, k) => ({
        partition: (i + k) % 2, value: `v-${i}-${k}-` + 'x'.repeat(200),
      })),
    })
  }
  await producer.disconnect()

  const target = [{ partition: 0, replicas: [2, 3] }, { partition: 1, replicas: [3, 2] }]
  await admin.alterPartitionReassignments({ topics: [{ topic, partitionAssignment: target }] })
  const seen = []
  const deadline = Date.now() + 60000
  for (;;) {
    const { topics } = await admin.listPartitionReassignments({})
    const mine = topics.filter(t => t.name === topic)
    seen.push(mine)
    if (mine.length === 0 || mine.every(t => t.partitions.length === 0)) break
    if (Date.now() > deadline) throw new Error('reassignment did not finish: ' + JSON.stringify(mine))
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  // The brokers' metadata follows the coordinator's through their watches.
  let after
  for (;;) {
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    after = md.topics[0].partitions.map(p => ({
      partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr,
    })).sort((a, b) => a.partition - b.partition)
    const done = after.every(p => p.isr.length === 2 &&
      JSON.stringify(p.replicas) === JSON.stringify(target[p.partition].replicas))
    if (done) break
    if (Date.now() > deadline) throw new Error('metadata did not settle: ' + JSON.stringify(after))
    await new Promise(resolve => setTimeout(resolve, 200))
  }

  let refused = null
  try {
    await admin.alterPartitionReassignments({
      topics: [{ topic, partitionAssignment: [{ partition: 0, replicas: [2, 9] }] }],
    })
  } catch (e) {
    refused = {
      message: e.message,
      // a KafkaJSAggregateError with one error per refused partition
      errors: (e.errors || [e]).map(x => ({ type: x.type || null, message: x.message })),
    }
  }
  await admin.disconnect()
  process.stdout.write(JSON.stringify({ seen, after, refused }) + '\n')
}

main().catch(e => {
  process.stderr.write(String(e && e.stack || e) + '\n')
  process.exit(1)
})
