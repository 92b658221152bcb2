"""Provider clients (Instagift, Cardly, InstantCard). Each translates its provider's vocabulary itself and
uses `service.providers.http.ProviderHttp` for transport and error mapping."""
