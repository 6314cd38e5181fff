// @platformatic/kafka 1.35.0 consumer group against weir-broker (flexible
// versions: JoinGroup v6, SyncGroup v4/v5 as advertised, Heartbeat v4,
// LeaveGroup v4, OffsetCommit v8, OffsetFetch v8, DescribeGroups v5,
// ListGroups v4).
//
// Usage: node platformatic_group.mjs BROKERS TOPIC COUNT PARTITIONS
// Prints one JSON object on stdout; exits non-zero on any error.
//
// Two consumers of one group read COUNT records (autocommit), each once; the
// group is described and listed through Admin while both are in; both close
// (LeaveGroup) and the group is then Empty and can be deleted (DeleteGroups).
import { Admin, Consumer, Producer } from '@platformatic/kafka'

const [brokersArg, topic, countArg, partitionsArg] = process.argv.slice(2)
const count = parseInt(countArg, 10)
const partitions = parseInt(partitionsArg || '3', 10)
const groupId = 'platformatic-group'
const common = {
  bootstrapBrokers: brokersArg.split(','),
  connectTimeout: 5000,
  timeout: 15000,
  retries: 10,
  retryDelay: 200
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const admin = new Admin({ ...common, clientId: 'weir-platformatic-admin' })
  await admin.createTopics({ topics: [topic], partitions, replicas: 3 })
  for (let i = 0; ; i++) {
    const meta = await admin.metadata({ topics: [topic], forceUpdate: true })
    const t = meta.topics.get(topic)
    if (t && t.partitionsCount === partitions && t.partitions.every(p => p.leader >= 0)) break
    if (i > 100) throw new Error('topic has no leaders')
    await sleep(50)
  }
  const producer = new Producer({ ...common, clientId: 'weir-platformatic-producer', autocreateTopics: false })
  const messages = []
  for (let i = 0; i < count; i++) messages.push({ topic, key: Buffer.from(`k${i}`), value: Buffer.from(String(i)) })
  await producer.send({ messages, acks: -1 })
  await producer.close()

  const seen = []
  const partitionsByMember = [new Set(), new Set()]
  const consumers = [0, 1].map(c => new Consumer({ ...common, clientId: `weir-platformatic-c${c}`, groupId }))
  // Both join at once (within group.initial.rebalance.delay.ms): one generation, two members.
  const streams = await Promise.all(consumers.map(c => c.consume({
    topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: 100, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTime: 200
  })))
  streams.forEach((stream, c) => {
    stream.on('data', m => {
      seen.push(parseInt(m.value.toString(), 10))
      partitionsByMember[c].add(m.partition)
    })
    stream.on('error', e => { console.error(e); process.exit(1) })
  })
  const deadline = Date.now() + 60000
  let described = null
  while (Date.now() < deadline) {
    if (new Set(seen).size >= count) {
      const g = (await admin.describeGroups({ groups: [groupId] })).get(groupId)
      if (g && g.state === 'STABLE' && g.members.size === 2) { described = g; break }
      if (g && g.state && g.state.toUpperCase() === 'STABLE' && g.members.size === 2) { described = g; break }
    }
    await sleep(200)
  }
  const listed = [...(await admin.listGroups()).values()].filter(g => g.id === groupId)
  await sleep(500) // one more autocommit round
  for (const s of streams) await s.close()
  for (const c of consumers) await c.close()
  let afterLeave = null
  for (let i = 0; i < 50; i++) {
    afterLeave = (await admin.describeGroups({ groups: [groupId] })).get(groupId).state
    if (String(afterLeave).toUpperCase() === 'EMPTY') break
    await sleep(100)
  }
  let deleted = true
  try {
    await admin.deleteGroups({ groups: [groupId] })
  } catch (e) {
    deleted = String(e && e.message)
  }
  await admin.close()
  process.stdout.write(JSON.stringify({
    seen,
    partitionsByMember: partitionsByMember.map(s => [...s].sort()),
    described: described && {
      state: described.state,
      protocolType: described.protocolType,
      protocol: described.protocol,
      members: [...described.members.values()].map(m => ({ clientId: m.clientId, clientHost: m.clientHost }))
    },
    listed: listed.map(g => ({ state: g.state, protocolType: g.protocolType })),
    afterLeave,
    deleted
  }) + '\n')
}

main().catch(e => { console.error(e && e.stack ? e.stack : e); process.exit(1) })
