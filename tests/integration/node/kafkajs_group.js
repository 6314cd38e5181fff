// kafkajs 2.2.4 consumer group against weir-broker.
//
// Usage: node kafkajs_group.js BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Two consumers of one group (JoinGroup v5 / SyncGroup v3 / Heartbeat v3 /
// OffsetCommit v5 / OffsetFetch v4 / LeaveGroup v3, kafkajs' RoundRobin
// assigner) read COUNT records from a PARTITIONS-partition topic, each record
// once; the group is described (DescribeGroups v2) while both are in, and
// after both disconnect (LeaveGroup) a third consumer of the group finds
// nothing left past the committed offsets.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)
const groupId = 'kafkajs-group'

async function main () {
  const kafka = new Kafka({
    clientId: 'weir-kafkajs-group',
    brokers: brokersArg.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 10, initialRetryTime: 100 }
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 3 }], waitForLeaders: true })
  // Idempotent: a broker takes up a new topic's leaderships over a few reconcile
  // slices, so the first Produce can meet NOT_LEADER_OR_FOLLOWER for one partition
  // of a request; kafkajs then resends the whole request, and without idempotence
  // the partitions that had succeeded get their records twice (at-least-once, as
  // with Kafka). The check below is "every record once", so the producer dedups.
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const messages = []
  for (let i = 0; i < count; i++) messages.push({ key: `k${i}`, value: String(i) })
  await producer.send({ topic, messages, acks: -1 })
  await producer.disconnect()

  const seen = []
  const byMember = [[], []]
  const consumers = [0, 1].map(() => kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 }))
  for (let c = 0; c < consumers.length; c++) {
    await consumers[c].connect()
    await consumers[c].subscribe({ topic, fromBeginning: true })
  }
  await Promise.all(consumers.map((consumer, c) => consumer.run({
    eachMessage: async ({ partition, message }) => {
      seen.push(parseInt(message.value.toString(), 10))
      byMember[c].push(partition)
    }
  })))
  const deadline = Date.now() + 60000
  let described = null
  while (Date.now() < deadline) {
    if (new Set(seen).size >= count) {
      const d = await admin.describeGroups([groupId])
      described = d.groups[0]
      if (described.state === 'Stable' && described.members.length === 2) break
    }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  for (const consumer of consumers) await consumer.disconnect()
  const afterLeave = (await admin.describeGroups([groupId])).groups[0].state

  // A new member of the group: everything was committed, nothing comes again.
  const again = []
  const third = kafka.consumer({ groupId, sessionTimeout: 10000 })
  await third.connect()
  await third.subscribe({ topic, fromBeginning: true })
  let joined = false
  third.on(third.events.GROUP_JOIN, () => { joined = true })
  await third.run({ eachMessage: async ({ message }) => { again.push(message.value.toString()) } })
  const joinDeadline = Date.now() + 30000
  while (!joined && Date.now() < joinDeadline) await new Promise(resolve => setTimeout(resolve, 100))
  await new Promise(resolve => setTimeout(resolve, 1500))
  await third.disconnect()
  const groups = (await admin.listGroups()).groups.filter(g => g.groupId === groupId)
  await admin.disconnect()
  process.stdout.write(JSON.stringify({
    seen,
    partitionsByMember: byMember.map(ps => [...new Set(ps)].sort()),
    described: described && {
      state: described.state,
      protocolType: described.protocolType,
      protocol: described.protocol,
      members: described.members.map(m => ({ clientId: m.clientId, clientHost: m.clientHost }))
    },
    afterLeave,
    joined,
    again,
    listed: groups
  }) + '\n')
}

main().catch(e => { console.error(e && e.stack ? e.stack : e); process.exit(1) })
