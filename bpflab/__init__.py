"""bpflab: write, build and prove XDP/eBPF programs.

One import namespace, in layers; each imports only from those below it (the
lint session enforces it, see the README's layout):

    bpflab.libbpf    a typed ctypes layer over the system libbpf, and nothing else
    bpflab.host      this machine: network namespaces, mounts, owner locks and
                     liveness, processes, bpffs and tracefs, leftovers
    bpflab.loaders   one loader per program (loaders/ in the repository)
    bpflab.lab       veth/netns topologies, traffic, checksums, the pytest plugin (lab/)
    bpflab.bench, bpflab.kernels, tests   on top (bench/, kernels/, tests/)
"""
