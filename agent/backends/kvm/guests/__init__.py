"""Sample guests of the ``kvm`` backend (assembly sources) and their build step."""
