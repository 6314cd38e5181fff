/* methods: the method numbers of the internal RPC services, one definition for
 * every caller and server.
 *
 * An RPC frame names its method by index: the position of the rpc line in the
 * service of the .proto file beside this header (append only, never reorder).
 * proto_methods_check() compares these enums with the descriptors protoc-c
 * generated, so a reordered or extended .proto that was not mirrored here fails
 * at start-up (servers and clients call it) and in the unit tests, instead of
 * misrouting calls. */
#pragma once

/* weir.coord.Coordinator (coordinator.proto) */
enum coord_method {
    COORD_M_REGISTER_BROKER = 0,
    COORD_M_HEARTBEAT,
    COORD_M_CONTROLLED_SHUTDOWN,
    COORD_M_ALTER_PARTITION,
    COORD_M_CREATE_TOPICS,
    COORD_M_DELETE_TOPICS,
    COORD_M_CREATE_PARTITIONS,
    COORD_M_DESCRIBE_CLUSTER,
    COORD_M_LIST_TOPICS,
    COORD_M_DESCRIBE_TOPICS,
    COORD_M_GET_IMAGE,
    COORD_M_WATCH,
    COORD_M_ALTER_TOPIC_CONFIGS,
    COORD_M_UNREGISTER_BROKER,
    COORD_M_ALLOCATE_PRODUCER_IDS,
    COORD_M_ALTER_BROKER_CONFIGS,
    COORD_M_ALTER_REASSIGNMENTS,
    COORD_M_LIST_REASSIGNMENTS,
    COORD_M_ELECT_LEADERS,
    COORD_M_QUORUM_STEP,
    COORD_M_COUNT
};

/* weir.repl.Replica (replica.proto) */
enum repl_method {
    REPL_M_FETCH = 0,
    REPL_M_COUNT
};

/* 0 when every enum above matches its generated service descriptor (count and
 * method names), else -EPROTO. */
int proto_methods_check(void);
