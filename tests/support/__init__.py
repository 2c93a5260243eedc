"""What the tests (Molecule's, the lab's) and the benchmark share: running
playbooks, writing inventories, reaching the hosts, sending HTTP and load."""
