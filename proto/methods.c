/* methods: the check that proto/methods.h matches the generated descriptors. */
#include "methods.h"

#include <errno.h>
#include <string.h>

#include "coordinator.pb-c.h"
#include "replica.pb-c.h"

static const char *const coord_names[COORD_M_COUNT] = {
    [COORD_M_REGISTER_BROKER] = "RegisterBroker",
    [COORD_M_HEARTBEAT] = "Heartbeat",
    [COORD_M_CONTROLLED_SHUTDOWN] = "ControlledShutdown",
    [COORD_M_ALTER_PARTITION] = "AlterPartition",
    [COORD_M_CREATE_TOPICS] = "CreateTopics",
    [COORD_M_DELETE_TOPICS] = "DeleteTopics",
    [COORD_M_CREATE_PARTITIONS] = "CreatePartitions",
    [COORD_M_DESCRIBE_CLUSTER] = "DescribeCluster",
    [COORD_M_LIST_TOPICS] = "ListTopics",
    [COORD_M_DESCRIBE_TOPICS] = "DescribeTopics",
    [COORD_M_GET_IMAGE] = "GetImage",
    [COORD_M_WATCH] = "Watch",
    [COORD_M_ALTER_TOPIC_CONFIGS] = "AlterTopicConfigs",
    [COORD_M_UNREGISTER_BROKER] = "UnregisterBroker",
    [COORD_M_ALLOCATE_PRODUCER_IDS] = "AllocateProducerIds",
    [COORD_M_ALTER_BROKER_CONFIGS] = "AlterBrokerConfigs",
    [COORD_M_ALTER_REASSIGNMENTS] = "AlterReassignments",
    [COORD_M_LIST_REASSIGNMENTS] = "ListReassignments",
    [COORD_M_ELECT_LEADERS] = "ElectLeaders",
    [COORD_M_QUORUM_STEP] = "QuorumStep",
};

static const char *const repl_names[REPL_M_COUNT] = {
    [REPL_M_FETCH] = "Fetch",
};

static int check(const ProtobufCServiceDescriptor *desc, const char *const *names, unsigned n)
{
    if (desc->n_methods != n)
        return -EPROTO;
    for (unsigned i = 0; i < n; i++)
        if (!names[i] || strcmp(desc->methods[i].name, names[i]) != 0)
            return -EPROTO;
    return 0;
}

int proto_methods_check(void)
{
    int r = check(&weir__coord__coordinator__descriptor, coord_names, COORD_M_COUNT);
    if (r == 0)
        r = check(&weir__repl__replica__descriptor, repl_names, REPL_M_COUNT);
    return r;
}
