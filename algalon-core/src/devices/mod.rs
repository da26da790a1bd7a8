//! Device selection: one grammar, one parser and one resolver for every way
//! a GPU is named — `CUDA_VISIBLE_DEVICES`, the exporter's `-d/--devices`
//! (dcgm-exporter's grammar), the Python package's `gpus=` and the C
//! library's `algalon_options_set_devices`.
//!
//! # One entry
//!
//! | entry | means |
//! |---|---|
//! | `3` | the GPU with NVML index 3 (CUDA's integer, `nvidia-smi`'s index) |
//! | `cuda:1` | the second device *this process* sees, in `CUDA_VISIBLE_DEVICES` order (Python `gpus=` only) |
//! | `GPU-5e2d7b…` | a GPU by UUID, or by a prefix of it that matches one GPU |
//! | `5e2d7b…` | the same without `GPU-` (hex digits and dashes only) |
//! | `MIG-…` | a MIG device: `MIG-<uuid>` or CUDA's `MIG-GPU-<gpu uuid>/<gi>/<ci>` (jobs measure the instance; `-d` selects instances by `i:LIST`) |
//!
//! **Case**: decided once, here — nothing in a selector is case-sensitive.
//! `GPU-`, `MIG-`, `cuda:`, dcgm-exporter's letters `f`/`g`/`i` and `all`
//! may be written in any case, and a UUID (a hex number) matches in any
//! case. An exact UUID wins over a prefix; a prefix that matches several
//! GPUs is an error that says how many.
//!
//! # Lists
//!
//! * [`parse_cuda_visible_devices`]: exactly CUDA's rule — entries separated
//!   by `,`, and parsing *stops at the first invalid entry*: `0,2,-1,1` is
//!   GPUs 0 and 2, `1,,2` is GPU 1 alone (the empty entry is invalid), an
//!   empty value hides every GPU. What was cut off is kept in
//!   [`VisibleList::ignored`] so a face can say so. A well-formed entry that
//!   matches no GPU of the host is an error rather than CUDA's silent stop:
//!   otherwise a job's report would cover other GPUs than the job uses.
//! * [`DeviceSpec::parse`]: dcgm-exporter's `-d`: `f` (every GPU), `g`,
//!   `g:LIST`, `i`, `i:LIST`, and `g[:LIST]+i[:LIST]`, where LIST is
//!   comma-separated numbers and `A-B` ranges; Algalon also takes `all`,
//!   a LIST without `g:`, and UUIDs in a LIST. An empty item or a backwards
//!   range is an error.
//! * [`parse_list`]: a comma-separated list of entries (the C option).
//!
//! Every "no GPU matches" error names what the host (or the process) has,
//! formatted once by [`describe_host`] / [`Visible::describe`].

mod grammar;
mod visible;

pub use grammar::{
    DeviceSpec, GpuSet, InstanceSet, Selector, SelectorError, VisibleList,
    parse_cuda_visible_devices, parse_entry, parse_list,
};
pub use visible::{
    CUDA_VISIBLE_DEVICES, HostGpu, HostMig, Visible, describe_host, describe_instances, resolve,
    resolve_mig,
};
