// Survives a mapped file that shrinks underneath us.
//
// Tensors that TensorFile.get hands out map the file's pages (files::Region, mapped_file.h), and the readers parse
// headers through a map of the whole file (files::MappedFile). If another program truncates or rewrites that
// file in place while the maps live, touching a page past the new end raises SIGBUS, which would kill Node.
// Every such map is registered here; a SIGBUS handler installed once for the process catches faults inside a
// registered range, puts a zero page where the file's page was (so the faulting instruction can finish), marks
// the range lost and counts the fault. Then:
//   - an operation that faulted while it ran fails with ERR_IO (TorchWorker checks the count around its work;
//     AtomicFile checks it before it commits, so nothing written from lost pages lands under a final name);
//   - a tensor over a lost range is refused with ERR_IO whenever it is used again (TensorWrap checks it).
// A fault anywhere else goes to the handler that was there before (or the default action), as if we were absent.
// litlora's own writers never cause this: they write a temp file and rename it over the target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace litlora::mapped_guard {

// A registered range; 0 when the table was full (the range is then simply not protected).
using Slot = uint32_t;

// Registers [begin, begin + length) of a map of `path`, with the protection it was mapped with (for the zero
// page). Installs the SIGBUS handler on first use.
Slot add(const void* begin, size_t length, int prot, const std::string& path);
// Call before munmap.
void remove(Slot slot);
// True when a page of the range was lost to a SIGBUS.
bool lost(Slot slot);
// The file a registered range maps ("" for slot 0).
std::string path(Slot slot);

// How many faults were caught so far in this process.
uint64_t faults();
// Throws ERR_IO when a fault was caught since `before` (a value of faults()): `what` names the operation.
void throwIfFaultedSince(uint64_t before, const std::string& what);

}  // namespace litlora::mapped_guard
