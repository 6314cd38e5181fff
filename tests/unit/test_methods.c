/* Tests for proto/methods: the method numbers callers use match the services
 * protoc-c generated from the .proto files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "coordinator.pb-c.h"
#include "methods.h"
#include "replica.pb-c.h"

static void test_methods_match_the_generated_descriptors(void **state)
{
    (void)state;
    assert_int_equal(proto_methods_check(), 0);
    /* Spot checks by name, so a table that drifted together with the check
     * would still be caught. */
    const ProtobufCServiceDescriptor *c = &weir__coord__coordinator__descriptor;
    assert_int_equal(c->n_methods, COORD_M_COUNT);
    assert_string_equal(c->methods[COORD_M_REGISTER_BROKER].name, "RegisterBroker");
    assert_string_equal(c->methods[COORD_M_ALTER_PARTITION].name, "AlterPartition");
    assert_string_equal(c->methods[COORD_M_WATCH].name, "Watch");
    assert_string_equal(c->methods[COORD_M_UNREGISTER_BROKER].name, "UnregisterBroker");
    const ProtobufCServiceDescriptor *r = &weir__repl__replica__descriptor;
    assert_int_equal(r->n_methods, REPL_M_COUNT);
    assert_string_equal(r->methods[REPL_M_FETCH].name, "Fetch");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_match_the_generated_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
