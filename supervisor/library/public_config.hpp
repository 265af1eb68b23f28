// The library's public Config, checked and turned into the internal RunConfig: everything about a
// run but its topics. Used by the Executor and by the HTTP service, so both refuse the same configs.
#pragma once

#include <optional>

#include "concurrent_bigmodel/executor.hpp"
#include "request_settings.hpp"
#include "run_config.hpp"

namespace cbm {

// The first unusable setting of what `config` sends on the wire (ranges, the flavour's limits, model
// names), named by its Config field (SettingProblem::flag() names the CLI's flag); nullopt when none.
std::optional<SettingProblem> request_settings_problem(const concurrent_bigmodel::Config& config);

// The one check of a Config: its first unusable setting, named by its Config field (the CLI turns
// the field into its flag), or nullopt. Checks the values alone: files and the environment are read
// when the run starts.
std::optional<SettingProblem> config_problem(const concurrent_bigmodel::Config& config);

// The price table and the budget: the price file that cannot be read or is not a price table
// ("price_file", naming the file and the entry), a cost budget over a model or search engine the table
// has no price for ("max_cost"); nullopt when none. Reads the price file (checked_run_config does too).
std::optional<SettingProblem> cost_problem(const concurrent_bigmodel::Config& config);

// Why a config with Config::resume = `resume` cannot be estimated by a dry run (Executor::estimate*, the
// CLI's --dry-run): "resume" (a dry run estimates the whole input; it does not read the journal);
// nullopt when it can.
std::optional<SettingProblem> dry_run_problem(bool resume);

// Throws std::invalid_argument naming the field when `config` is unusable (config_problem, then the
// LangSmith environment and the run's files).
RunConfig checked_run_config(const concurrent_bigmodel::Config& config);

}  // namespace cbm
