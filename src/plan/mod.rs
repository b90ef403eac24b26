//! The pruning choice: which layers of a stack to drop, by rule and by hand, and the contiguous
//! kept ranges that a mergekit passthrough config and the pruned model are built from.
//! Shared by the explorer and `snrscope export`.
//!
//! - [`rule`]: the rules and the selection (rule + hand choices);
//! - [`ranges`]: layer lists (`12,20-21`) and kept ranges;
//! - [`table`]: SNR tables from scans or scan files, and the plan built from a request;
//! - [`decision`]: the [`Plan`] every writer takes;
//! - [`model_facts`]: sizes, dtype and mergekit module names of the model being pruned.

mod decision;
mod model_facts;
mod ranges;
mod rule;
mod table;

pub use decision::{MergekitModules, Plan, PlanError};
pub use model_facts::{Sizes, mergekit_modules, model_dtype, sizes};
pub use ranges::{
    ParseError, format_layer_list, format_ranges, join_layers, kept_ranges, parse_layer_list,
};
pub use rule::{Mark, Rule, Selection};
pub use table::{
    Reading, Request, SnrTable, describe_choice, describe_choice_of, make_plan, make_plan_from,
};
