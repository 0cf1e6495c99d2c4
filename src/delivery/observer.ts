/** How adapters report each request to a provider (for metrics): provider, status, seconds. */
export type ProviderObserver = (provider: string, status: string, seconds: number) => void;

export const ignoreProviderRequest: ProviderObserver = () => undefined;
