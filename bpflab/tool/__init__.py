"""`bpflab`: the command (and its Python API) for anyone's XDP or tc
program: replay a pcap through it, check its checksums at the edges, fill
its maps from JSON, run an annotated verifier corpus."""
