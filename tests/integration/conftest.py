"""pytest configuration for the integration tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "scale: 10,000-partition tests with time bounds for an optimized build "
        "(tests/run.sh deselects them against the sanitizer build)")
    config.addinivalue_line(
        "markers", "vms: deployment on simulated VMs (network namespaces, sshd, Ansible) "
        "(tests/run.sh deselects them against the sanitizer build)")
