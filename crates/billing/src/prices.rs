//! Prices: per model (USD per 1M input and output tokens, held as micro-dollars per 1M tokens),
//! per billed tool call, and the monthly allowance of each tier.

use std::collections::HashMap;

use store::{Micros, Tier};

/// What a model costs per 1M tokens, in micro-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input_per_million: Micros,
    pub output_per_million: Micros,
}

impl ModelPrice {
    /// A price from dollars per 1M tokens, given in cents to stay exact (200 = $2.00).
    const fn cents(input: i64, output: i64) -> ModelPrice {
        ModelPrice {
            input_per_million: input * 10_000,
            output_per_million: output * 10_000,
        }
    }

    /// The cost of one call, rounded up to the next micro-dollar.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Micros {
        let total = i128::from(prompt_tokens) * i128::from(self.input_per_million)
            + i128::from(completion_tokens) * i128::from(self.output_per_million);
        let micros = (total + 999_999) / 1_000_000;
        Micros::try_from(micros).unwrap_or(Micros::MAX)
    }
}

/// Public list prices of common OpenAI models (USD per 1M tokens, standard tier).
const SHIPPED: &[(&str, ModelPrice)] = &[
    ("gpt-5", ModelPrice::cents(125, 1000)),
    ("gpt-5-mini", ModelPrice::cents(25, 200)),
    ("gpt-5-nano", ModelPrice::cents(5, 40)),
    ("gpt-4.1", ModelPrice::cents(200, 800)),
    ("gpt-4.1-mini", ModelPrice::cents(40, 160)),
    ("gpt-4.1-nano", ModelPrice::cents(10, 40)),
    ("gpt-4o", ModelPrice::cents(250, 1000)),
    ("gpt-4o-mini", ModelPrice::cents(15, 60)),
    ("o1", ModelPrice::cents(1500, 6000)),
    ("o3", ModelPrice::cents(200, 800)),
    ("o3-mini", ModelPrice::cents(110, 440)),
    ("o4-mini", ModelPrice::cents(110, 440)),
    ("gpt-4-turbo", ModelPrice::cents(1000, 3000)),
    ("gpt-3.5-turbo", ModelPrice::cents(50, 150)),
];

/// The prices in force.
#[derive(Debug, Clone)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    /// For models not in the table.
    pub default_model: ModelPrice,
    /// Per call of a billed tool.
    pub tool_call: Micros,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            models: SHIPPED.iter().map(|(m, p)| (m.to_string(), *p)).collect(),
            default_model: ModelPrice::cents(200, 800),
            tool_call: 2_000,
        }
    }
}

impl PriceTable {
    /// Sets or replaces a model's price.
    pub fn set_model(&mut self, model: &str, price: ModelPrice) {
        self.models.insert(model.to_string(), price);
    }

    /// The price of a model: exact name, else the longest known name it starts with
    /// (`gpt-4.1-2025-04-14` is priced as `gpt-4.1`), else the default.
    pub fn model(&self, model: &str) -> ModelPrice {
        if let Some(price) = self.models.get(model) {
            return *price;
        }
        self.models
            .iter()
            .filter(|(name, _)| {
                model.starts_with(name.as_str()) && model[name.len()..].starts_with('-')
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
            .unwrap_or(self.default_model)
    }
}

/// The monthly free allowance of each tier.
#[derive(Debug, Clone, Copy)]
pub struct Allowances {
    pub free: Micros,
    pub standard: Micros,
    pub professional: Micros,
}

impl Default for Allowances {
    fn default() -> Self {
        Allowances {
            free: 5_000_000,
            standard: 10_000_000,
            professional: 20_000_000,
        }
    }
}

impl Allowances {
    /// The allowance of a tier.
    pub fn of(&self, tier: Tier) -> Micros {
        match tier {
            Tier::Free => self.free,
            Tier::Standard => self.standard,
            Tier::Professional => self.professional,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_and_round_up() {
        let table = PriceTable::default();
        let price = table.model("gpt-4.1");
        assert_eq!(price.cost(1_000_000, 0), 2_000_000);
        assert_eq!(price.cost(1_000, 1_000), 10_000);
        assert_eq!(
            table.model("gpt-4.1-nano").cost(1, 0),
            1,
            "a fraction of a micro-dollar rounds up"
        );
        assert_eq!(table.model("gpt-4.1-2025-04-14"), table.model("gpt-4.1"));
        assert_eq!(
            table.model("gpt-4.1-mini-2025-04-14"),
            table.model("gpt-4.1-mini")
        );
        assert_eq!(table.model("llama3:70b"), table.default_model);
        assert_eq!(Allowances::default().of(Tier::Standard), 10_000_000);
    }
}
