//! Writers: the mergekit slice YAML, the pruned model folder, Spectrum's unfrozen-parameters
//! YAML.
